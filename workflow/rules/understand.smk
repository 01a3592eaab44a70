# Phase 1: understand the data (dictionary, cohort summary; Table 1 and profiling join here).


add_targets(
    "results/{database}/understand/data_dictionary.csv",
    "results/{database}/understand/cohort_summary.csv",
    "results/{database}/summary/cohort.json",
)


rule data_dictionary:
    """Data dictionary with per-variable coverage in this database."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        dictionary=DICTIONARY,
    output:
        table=report(
            "results/{database}/understand/data_dictionary.csv",
            caption=caption("data_dictionary"),
            category="Data",
            subcategory="{database}",
            labels={"table": "data dictionary"},
        ),
    params:
        min_cell_count=config["min_cell_count"],
    log:
        log_path("data_dictionary"),
    benchmark:
        bench_path("data_dictionary")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/understand.yaml"
    script:
        "../../scripts/data_dictionary.py"


rule cohort_summary:
    """Counts by CS group and outcome rates, small cells suppressed; headline cohort.json."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        stats="results/{database}/ingest/ingest_stats.json",
    output:
        table=report(
            "results/{database}/understand/cohort_summary.csv",
            caption=caption("cohort_summary"),
            category="Data",
            subcategory="{database}",
            labels={"table": "cohort summary"},
        ),
        summary="results/{database}/summary/cohort.json",
    params:
        min_cell_count=config["min_cell_count"],
    log:
        log_path("cohort_summary"),
    benchmark:
        bench_path("cohort_summary")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/understand.yaml"
    script:
        "../../scripts/cohort_summary.py"
