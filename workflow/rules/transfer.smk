# Phase 5: transfer learning across databases (source -> target pairs of config `transfer.pairs`)
# and from temporal auxiliary information (privileged late data, auxiliary targets) on each target.
# Jobs: one per pair x strategy (sizes and seeds loop inside), one temporal job per target, one
# summary per pair (learning curves, negative-transfer guard, shortcut check, summary.json).


include: "transfer_common.smk"


rule transfer_strategy:
    """One transfer strategy of one pair over target training sizes x seeds (fixed target test set)."""
    input:
        unpack(transfer_pair_inputs),
        unpack(transfer_selected_input),
    output:
        curve="results/transfer/{source}__{target}/strategies/{strategy}.parquet",
    log:
        "results/logs/transfer/{source}__{target}/strategy_{strategy}.log",
    benchmark:
        "results/benchmarks/transfer/{source}__{target}/strategy_{strategy}.tsv"
    wildcard_constraints:
        source=regex_of(TRANSFER_SOURCES),
        target=regex_of(TRANSFER_TARGETS),
        strategy=regex_of(TRANSFER_STRATEGIES),
    conda:
        "../../envs/transfer.yaml"
    threads: TRANSFER.get("threads", 1)
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        **config_params("outcome", "seed", "transfer"),
    script:
        "../../scripts/transfer_strategy.py"


rule transfer_temporal:
    """Early prediction on a target: distillation from a full-trajectory teacher and auxiliary targets."""
    input:
        cohort="results/{target}/data/cohort.parquet",
        timeseries="results/{target}/data/timeseries.parquet",
        dictionary=lambda wc: dictionary_of(wc.target),
    output:
        runs="results/transfer/temporal/{target}/temporal_runs.parquet",
        table=report(
            "results/transfer/temporal/{target}/temporal_gains.csv",
            caption=caption("transfer_temporal"),
            category="Transfer",
            subcategory="{target}",
            labels={"table": "temporal auxiliary information"},
        ),
        summary="results/transfer/temporal/{target}/temporal.json",
    log:
        "results/logs/transfer/temporal_{target}.log",
    benchmark:
        "results/benchmarks/transfer/temporal_{target}.tsv"
    wildcard_constraints:
        target=regex_of(TRANSFER_TARGETS),
    conda:
        "../../envs/transfer.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **config_params("outcome", "seed", "stay_features", "transfer"),
        time_window=lambda wc: time_window_of(wc.target),
    script:
        "../../scripts/transfer_temporal.py"


rule transfer_summary:
    """Learning-curve table and figure, negative-transfer guard, shortcut check, summary.json of a pair."""
    input:
        unpack(transfer_pair_inputs),
        curves=expand(
            "results/transfer/{{source}}__{{target}}/strategies/{strategy}.parquet",
            strategy=TRANSFER_STRATEGIES,
        ),
        temporal="results/transfer/temporal/{target}/temporal.json",
    output:
        table=report(
            "results/transfer/{source}__{target}/learning_curve.csv",
            caption=caption("transfer_learning_curve_table"),
            category="Transfer",
            subcategory="{source} to {target}",
            labels={"table": "learning curves"},
        ),
        figure=report(
            "results/transfer/{source}__{target}/learning_curve.png",
            caption=caption("transfer_learning_curve"),
            category="Transfer",
            subcategory="{source} to {target}",
            labels={"figure": "learning curves"},
        ),
        selection=report(
            "results/transfer/{source}__{target}/selection.csv",
            caption=caption("transfer_selection"),
            category="Transfer",
            subcategory="{source} to {target}",
            labels={"table": "negative-transfer guard"},
        ),
        shortcuts=report(
            "results/transfer/{source}__{target}/shortcuts.csv",
            caption=caption("transfer_shortcuts"),
            category="Transfer",
            subcategory="{source} to {target}",
            labels={"table": "shortcut check"},
        ),
        summary="results/transfer/{source}__{target}/summary.json",
    log:
        "results/logs/transfer/{source}__{target}/summary.log",
    benchmark:
        "results/benchmarks/transfer/{source}__{target}/summary.tsv"
    wildcard_constraints:
        source=regex_of(TRANSFER_SOURCES),
        target=regex_of(TRANSFER_TARGETS),
    conda:
        "../../envs/transfer.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        **config_params("outcome", "seed", "transfer"),
        unrelated=lambda wc: config["databases"][wc.source].get("outcome_model")
        == "unrelated",
    script:
        "../../scripts/transfer_summary.py"
