# Ingest: every database into the canonical cohort contract, then validation.


rule simulate_cohort:
    """Simulate a database with planted phenotypes and a heterogeneous CS effect."""
    output:
        cohort="results/{database}/ingest/cohort.parquet",
        timeseries="results/{database}/ingest/timeseries.parquet",
        truth="results/{database}/truth/truth.parquet",
        stats="results/{database}/ingest/ingest_stats.json",
    log:
        log_path("simulate_cohort"),
    benchmark:
        bench_path("simulate_cohort")
    wildcard_constraints:
        database=regex_of(SIMULATED),
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **config_params("seed", "time_window", "cs_window"),
        db=database_params,
    script:
        "../../scripts/simulate_cohort.py"


rule ingest_contract:
    """Take a user's database in contract format (cohort + time series files) through its config mapping."""
    input:
        cohort=lambda wc: config["databases"][wc.database]["cohort"],
        timeseries=lambda wc: config["databases"][wc.database]["timeseries"],
        dictionary=DICTIONARY,
    output:
        cohort="results/{database}/ingest/cohort.parquet",
        timeseries="results/{database}/ingest/timeseries.parquet",
        stats="results/{database}/ingest/ingest_stats.json",
        mapping="results/{database}/ingest/mapping_changes.parquet",
        dictionary="results/{database}/ingest/variables.yaml",
    log:
        log_path("ingest_contract"),
        # every problem of a failed ingest (kept when the rule fails)
        problems="results/{database}/ingest/ingest_problems.csv",
    benchmark:
        bench_path("ingest_contract")
    wildcard_constraints:
        database=regex_of(dbs_of_type("contract")),
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        **config_params("contract", "cs_window", "outcome"),
        # the database's own time window and resolution (databases.<name>.time_window / .resolution)
        time_window=lambda wc: time_window_of(wc.database),
        resolution=lambda wc: resolution_of(wc.database),
        mapping=lambda wc: mapping_params(wc.database),
    script:
        "../../scripts/ingest_contract.py"


rule validate_cohort:
    """Check the contract files; repair what the config allows, fail in one line otherwise."""
    input:
        cohort="results/{database}/ingest/cohort.parquet",
        timeseries="results/{database}/ingest/timeseries.parquet",
        dictionary=db_dictionary,
        # what a contract database's mapping did, reported with the validator's findings
        mapping=lambda wc: (
            [f"results/{wc.database}/ingest/mapping_changes.parquet"]
            if db_type(wc.database) == "contract"
            else []
        ),
    output:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        changes=report(
            "results/{database}/data/validation_changes.csv",
            caption=caption("validation_changes"),
            category="Data",
            subcategory="{database}",
            labels={"table": "validation changes"},
        ),
    log:
        log_path("validate_cohort"),
        # every problem found (errors, repairs, warnings), kept when the rule fails
        problems="results/{database}/data/validation_problems.csv",
    benchmark:
        bench_path("validate_cohort")
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        **config_params("contract", "cs_window", "outcome"),
        # the database's own time window and resolution (databases.<name>.time_window / .resolution)
        time_window=lambda wc: time_window_of(wc.database),
        resolution=lambda wc: resolution_of(wc.database),
        # errors name the user's own files for databases delivered in contract format
        cohort_name=lambda wc: config["databases"][wc.database].get(
            "cohort", f"results/{wc.database}/ingest/cohort.parquet"
        ),
        timeseries_name=lambda wc: config["databases"][wc.database].get(
            "timeseries", f"results/{wc.database}/ingest/timeseries.parquet"
        ),
    script:
        "../../scripts/validate_cohort.py"
