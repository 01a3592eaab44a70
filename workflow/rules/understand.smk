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
        dictionary=db_dictionary,
    output:
        table=report(
            "results/{database}/understand/data_dictionary.csv",
            caption=caption("data_dictionary"),
            category="Data",
            subcategory="{database}",
            labels={"table": "data dictionary"},
        ),
    log:
        log_path("data_dictionary"),
    benchmark:
        bench_path("data_dictionary")
    conda:
        "../../envs/understand.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/data_dictionary.py"


rule cohort_summary:
    """Counts by CS group and outcome rates, small cells suppressed; headline cohort.json."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        stats="results/{database}/ingest/ingest_stats.json",
        timeseries="results/{database}/data/timeseries.parquet",
        dictionary=db_dictionary,
        # agreement with mimic-code (mimic_iv databases, when config reference.mimic_code is set)
        concordance=concordance_input,
    output:
        table=report(
            "results/{database}/understand/cohort_summary.csv",
            caption=caption("cohort_summary"),
            category="Data",
            subcategory="{database}",
            labels={"table": "cohort summary"},
        ),
        summary="results/{database}/summary/cohort.json",
    log:
        log_path("cohort_summary"),
    benchmark:
        bench_path("cohort_summary")
    conda:
        "../../envs/understand.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        min_cell_count=config["min_cell_count"],
        resolution=lambda wc: resolution_of(wc.database),
    script:
        "../../scripts/cohort_summary.py"


# ---------------------------------------------------------------- missingness, distributions, Table 1
add_targets(
    "results/{database}/understand/missingness.csv",
    "results/{database}/understand/distributions.png",
    "results/{database}/understand/table1.csv",
)


rule missingness:
    """Missing values per variable and CS group, measurement over time, joint missingness patterns."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        features="results/{database}/features/stay_features.parquet",
        dictionary=db_dictionary,
    output:
        table=report(
            "results/{database}/understand/missingness.csv",
            caption=caption("missingness"),
            category="Data",
            subcategory="{database}",
            labels={"table": "missingness by CS group"},
        ),
        over_time=report(
            "results/{database}/understand/missingness_over_time.png",
            caption=caption("missingness_over_time"),
            category="Data",
            subcategory="{database}",
            labels={"figure": "measurements over time"},
        ),
        patterns=report(
            "results/{database}/understand/missingness_patterns.png",
            caption=caption("missingness_patterns"),
            category="Data",
            subcategory="{database}",
            labels={"figure": "missingness patterns"},
        ),
    log:
        log_path("missingness"),
    benchmark:
        bench_path("missingness")
    conda:
        "../../envs/understand.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        # config read by the script: declared so that changing it reruns this rule
        understand=config["understand"],
        stay_features=config["stay_features"],
        prediction_horizon_h=config["prediction_horizon_h"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/missingness.py"


rule distributions:
    """Distributions of the Table 1 variables by CS group (one multi-panel figure)."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        features="results/{database}/features/stay_features.parquet",
        dictionary=db_dictionary,
    output:
        figure=report(
            "results/{database}/understand/distributions.png",
            caption=caption("distributions"),
            category="Data",
            subcategory="{database}",
            labels={"figure": "distributions by CS group"},
        ),
    log:
        log_path("distributions"),
    benchmark:
        bench_path("distributions")
    conda:
        "../../envs/understand.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # config read by the script: declared so that changing it reruns this rule
        stay_features=config["stay_features"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/distributions.py"


rule table1:
    """Table 1 by CS group: n (%), median [IQR], SMD unweighted and IPTW-weighted, p-values, suppression."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        features="results/{database}/features/stay_features.parquet",
        propensity="results/{database}/analyse/propensity.parquet",
        dictionary=db_dictionary,
    output:
        table=report(
            "results/{database}/understand/table1.csv",
            caption=caption("table1"),
            category="Data",
            subcategory="{database}",
            labels={"table": "Table 1 by CS group"},
        ),
        smd="results/{database}/understand/table1_smd.csv",
        balance=report(
            "results/{database}/understand/table1_balance.png",
            caption=caption("table1_balance"),
            category="Data",
            subcategory="{database}",
            labels={"figure": "covariate balance (SMD)"},
        ),
    log:
        log_path("table1"),
    benchmark:
        bench_path("table1")
    conda:
        "../../envs/understand.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # config read by the script: declared so that changing it reruns this rule
        understand=config["understand"],
        stay_features=config["stay_features"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/table1.py"
