# Fitted external models (config `external_models` entries with `model:`): the lab's scikit-learn
# pipelines (skops) or ONNX models, never pickles, applied to every analysed database through a feature
# mapping; their predictions join the supervised evaluation (supervised_common.smk: external_inputs).
# Docs: docs/external-models.md.


include: "external_common.smk"


TARGETS.extend(
    f"results/external/{name}/across_databases.{ext}"
    for name in FITTED_MODELS
    for ext in ("csv", "png", "json")
)


rule external_model_apply:
    """A fitted external model (skops or ONNX, never a pickle) applied to one database through its feature mapping."""
    input:
        model=lambda wc: FITTED_MODELS[wc.external].model,
        mapping=lambda wc: FITTED_MODELS[wc.external].mapping_file,
        features="results/{database}/features/stay_features.parquet",
        cohort="results/{database}/data/cohort.parquet",
        dictionary=DICTIONARY,
    output:
        predictions=f"{FITTED_DIR}/predictions.parquet",
        coverage=report(
            f"{FITTED_DIR}/coverage.csv",
            caption=caption("external_model_coverage"),
            category="Supervised",
            subcategory="{database}",
            labels={"model": "{external}", "table": "external model inputs"},
        ),
        summary=f"{FITTED_DIR}/application.json",
    log:
        "results/logs/{database}/external_model_apply_{external}.log",
    benchmark:
        "results/benchmarks/{database}/external_model_apply_{external}.tsv"
    wildcard_constraints:
        external=regex_of(list(FITTED_MODELS)),
    conda:
        "../../envs/external.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **config_params("min_cell_count"),
        entry=_fitted_entry,
        index=lambda wc: FITTED_MODELS[wc.external].index,
    script:
        "../../scripts/external_model_apply.py"


rule external_model_summary:
    """One fitted external model on every database it was applied to: applicability, AUROC, Brier, calibration with CIs."""
    input:
        metrics=lambda wc: expand(
            "results/{database}/supervised/metrics.csv",
            database=FITTED_MODELS[wc.external].databases,
        ),
        applied=lambda wc: expand(
            f"{FITTED_DIR}/application.json",
            database=FITTED_MODELS[wc.external].databases,
            external=wc.external,
        ),
    output:
        table=report(
            "results/external/{external}/across_databases.csv",
            caption=caption("external_model_across_databases"),
            category="Supervised",
            subcategory="external models",
            labels={"model": "{external}", "table": "metrics across databases"},
        ),
        figure=report(
            "results/external/{external}/across_databases.png",
            caption=caption("external_model_across_databases_figure"),
            category="Supervised",
            subcategory="external models",
            labels={"model": "{external}", "figure": "metrics across databases"},
        ),
        summary="results/external/{external}/across_databases.json",
    log:
        "results/logs/external/{external}/external_model_summary.log",
    benchmark:
        "results/benchmarks/external/{external}/external_model_summary.tsv"
    wildcard_constraints:
        external=regex_of(list(FITTED_MODELS)),
    conda:
        "../../envs/external.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **config_params("min_cell_count"),
        databases=lambda wc: list(FITTED_MODELS[wc.external].databases),
        fitted_on=lambda wc: FITTED_MODELS[wc.external].fitted_on,
    script:
        "../../scripts/external_model_summary.py"
