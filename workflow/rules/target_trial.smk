# Target-trial emulation of early CS (clone-censor-weight), one job per analysed database.


include: "target_trial_common.smk"


add_targets("results/{database}/summary/target_trial.json")


rule target_trial:
    """Clone-censor-weight emulation of "CS within G h" vs "no CS within G h"; naive contrasts and sensitivity."""
    input:
        unpack(target_trial_inputs),
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
    output:
        summary="results/{database}/summary/target_trial.json",
        protocol=report(
            "results/{database}/target_trial/protocol.csv",
            caption=caption("target_trial_protocol"),
            category="Target trial",
            subcategory="{database}",
            labels={"table": "protocol"},
        ),
        estimates=report(
            "results/{database}/target_trial/estimates.csv",
            caption=caption("target_trial_estimates"),
            category="Target trial",
            subcategory="{database}",
            labels={"table": "estimates"},
        ),
        sensitivity=report(
            "results/{database}/target_trial/sensitivity.csv",
            caption=caption("target_trial_sensitivity"),
            category="Target trial",
            subcategory="{database}",
            labels={"table": "sensitivity"},
        ),
        weights=report(
            "results/{database}/target_trial/weights.csv",
            caption=caption("target_trial_weights"),
            category="Target trial",
            subcategory="{database}",
            labels={"table": "weight diagnostics"},
        ),
        incidence=report(
            "results/{database}/target_trial/cumulative_incidence.png",
            caption=caption("target_trial_incidence"),
            category="Target trial",
            subcategory="{database}",
            labels={"figure": "cumulative incidence"},
        ),
        weights_figure=report(
            "results/{database}/target_trial/weights.png",
            caption=caption("target_trial_weights_figure"),
            category="Target trial",
            subcategory="{database}",
            labels={"figure": "weights"},
        ),
    log:
        log_path("target_trial"),
    benchmark:
        bench_path("target_trial")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        **config_params("target_trial", "seed", "min_cell_count"),
        # a randomised trial (databases.<name>.randomised, or design: trial): its ITT contrast, no emulation
        randomised=lambda wc: is_randomised(wc.database),
    script:
        "../../scripts/target_trial.py"
