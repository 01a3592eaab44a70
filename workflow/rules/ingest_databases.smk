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
        + raw_inputs(wc.database)
        + derived_files(wc.database),
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
        # bring-your-own mimic-code derived tables (databases.<name>.derived), None = computed
        derived=lambda wc: config["databases"][wc.database].get("derived"),
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


add_targets(
    "results/{database}/concordance/mimic_code.csv",
    "results/{database}/concordance/mimic_code.png",
    databases=CONCORDANCE,
)


rule mimic_code_reference:
    """Build MIT-LCP mimic-code's MIMIC-IV concepts (schema mimiciv_derived) from the raw tables into DuckDB."""
    input:
        raw=lambda wc: _adapter_files(
            db_type(wc.database), config["databases"][wc.database]["path"]
        )
        + raw_inputs(wc.database),
    output:
        db="results/{database}/reference/mimic_code.duckdb",
        stats="results/{database}/reference/mimic_code_build.json",
    log:
        log_path("mimic_code_reference"),
    benchmark:
        bench_path("mimic_code_reference")
    wildcard_constraints:
        database=regex_of(CONCORDANCE),
    conda:
        "../../envs/ingest.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        path=lambda wc: config["databases"][wc.database]["path"],
        mimic_code=MIMIC_CODE,
    script:
        "../../scripts/mimic_code_reference.py"


rule concordance_mimic_code:
    """Agreement of our Sepsis-3, suspected infection, hourly SOFA, vasopressor dose and ventilation with mimic-code."""
    input:
        reference="results/{database}/reference/mimic_code.duckdb",
        raw=lambda wc: _adapter_files(
            db_type(wc.database), config["databases"][wc.database]["path"]
        )
        + raw_inputs(wc.database),
        concepts=CONCEPTS,
        dictionary=DICTIONARY,
    output:
        table=report(
            "results/{database}/concordance/mimic_code.csv",
            caption=caption("concordance_mimic_code_table"),
            category="Data",
            subcategory="{database}",
            labels={"table": "concordance with mimic-code"},
        ),
        figure=report(
            "results/{database}/concordance/mimic_code.png",
            caption=caption("concordance_mimic_code"),
            category="Data",
            subcategory="{database}",
            labels={"figure": "concordance with mimic-code"},
        ),
        summary="results/{database}/concordance/mimic_code.json",
    log:
        log_path("concordance_mimic_code"),
    benchmark:
        bench_path("concordance_mimic_code")
    wildcard_constraints:
        database=regex_of(CONCORDANCE),
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        **config_params("cohort_definition", "time_window", "cs_window"),
        path=lambda wc: config["databases"][wc.database]["path"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/concordance_mimic_code.py"
