# Phase 2: general analysis (per-stay features; variable selection, correlation and temporal study join here).


add_targets("results/{database}/features/stay_features.parquet")


rule stay_features:
    """Static covariates plus summaries of each hourly variable before time zero and up to the horizon."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        dictionary=DICTIONARY,
    output:
        features="results/{database}/features/stay_features.parquet",
    log:
        log_path("stay_features"),
    benchmark:
        bench_path("stay_features")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../../envs/analyse.yaml"
    script:
        "../../scripts/stay_features.py"
