# Real ICU databases (MIMIC-IV, eICU-CRD) -> cohort contract: Sepsis-3 cohort, CS exposure, hourly series.
# The concept dictionary (config/concepts.yaml) maps every contract variable to its raw source; the
# cohort definition (config `cohort_definition`) is logged step by step in attrition.csv.
sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
# a light module (no polars): lists the raw tables each adapter reads
from sepsis_cs.adapters.tables import input_files as _adapter_files

CONCEPTS = config.get("cohort_definition", {}).get("concepts", "config/concepts.yaml")
_REAL = [d for d in ANALYSED if db_type(d) in ("mimic_iv", "eicu")]
add_targets("results/{database}/ingest/attrition.csv", databases=_REAL)
add_targets(
    "results/{database}/external/apache_iv.csv",
    databases=[d for d in _REAL if db_type(d) == "eicu"],
)


rule ingest_mimic_iv:
    """MIMIC-IV tables -> contract files of the Sepsis-3 cohort, attrition table and ingest statistics."""
    input:
        # raw tables the adapter reads (those present) plus the download marker, if any
        raw=lambda wc: _adapter_files(
            db_type(wc.database), config["databases"][wc.database]["path"]
        )
        + raw_inputs(wc.database),
        concepts=CONCEPTS,
        dictionary=DICTIONARY,
    output:
        cohort="results/{database}/ingest/cohort.parquet",
        timeseries="results/{database}/ingest/timeseries.parquet",
        stats="results/{database}/ingest/ingest_stats.json",
        attrition=report(
            "results/{database}/ingest/attrition.csv",
            caption=caption("attrition"),
            category="Data",
            subcategory="{database}",
            labels={"table": "cohort attrition"},
        ),
    log:
        log_path("ingest_mimic_iv"),
    benchmark:
        bench_path("ingest_mimic_iv")
    wildcard_constraints:
        database=regex_of(dbs_of_type("mimic_iv")),
    conda:
        "../../envs/ingest.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        **config_params("cohort_definition", "time_window", "cs_window"),
        path=lambda wc: config["databases"][wc.database]["path"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/ingest_mimic_iv.py"


rule ingest_eicu:
    """eICU-CRD tables -> contract files, attrition table, ingest statistics and APACHE IV predictions."""
    input:
        # raw tables the adapter reads (those present) plus the download marker, if any
        raw=lambda wc: _adapter_files(
            db_type(wc.database), config["databases"][wc.database]["path"]
        )
        + raw_inputs(wc.database),
        concepts=CONCEPTS,
        dictionary=DICTIONARY,
    output:
        cohort="results/{database}/ingest/cohort.parquet",
        timeseries="results/{database}/ingest/timeseries.parquet",
        stats="results/{database}/ingest/ingest_stats.json",
        attrition=report(
            "results/{database}/ingest/attrition.csv",
            caption=caption("attrition"),
            category="Data",
            subcategory="{database}",
            labels={"table": "cohort attrition"},
        ),
        apache="results/{database}/external/apache_iv.csv",
    log:
        log_path("ingest_eicu"),
    benchmark:
        bench_path("ingest_eicu")
    wildcard_constraints:
        database=regex_of(dbs_of_type("eicu")),
    conda:
        "../../envs/ingest.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        **config_params("cohort_definition", "time_window", "cs_window"),
        path=lambda wc: config["databases"][wc.database]["path"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/ingest_eicu.py"
