# Report: summary front page (from every phase's headline numbers) and the TRIPOD+AI checklist.


SUMMARY_FILES = [
    t
    for t in TARGETS
    if Path(t).parent.name == "summary" or Path(t).name == "summary.json"
]


rule report_summary:
    """Front page of the Snakemake report and the TRIPOD+AI checklist."""
    input:
        summaries=SUMMARY_FILES,
        table1=expand("results/{database}/understand/table1.csv", database=ANALYSED),
        attrition=[
            f"results/{d}/ingest/attrition.csv"
            for d in ANALYSED
            if db_type(d) in ("mimic_iv", "eicu")
        ],
    output:
        rst="results/report/summary.rst",
        checklist=report(
            "results/report/tripod_ai_checklist.html",
            caption="../report/tripod_ai_checklist.rst",
            category="Summary",
            labels={"table": "TRIPOD+AI checklist"},
        ),
    log:
        "results/logs/report/report_summary.log",
    benchmark:
        "results/benchmarks/report/report_summary.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        **config_params(
            "min_cell_count",
            "outcome",
            "cs_window",
            "prediction_horizon_h",
            "seed",
            "features",
            "databases",
        ),
    script:
        "../../scripts/report_summary.py"


TARGETS.extend(rules.report_summary.output)
