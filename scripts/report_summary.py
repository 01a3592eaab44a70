"""Summary page and TRIPOD+AI checklist of the report (rule report_summary)."""

from pathlib import Path

import polars as pl

from sepsis_cs.io import run_script, write_text
from sepsis_cs.report import checklist_html, load_summaries, summary_rst, tripod_checklist

# registered outputs the summary points to (file names; Snakemake's report links them by name)
LINKS = {
    "cohort counts and crude rates": "cohort_summary.csv",
    "TRIPOD+AI checklist": "tripod_ai_checklist.html",
}


def main(smk):
    summaries = load_summaries(list(smk.input.summaries))
    tables = {}
    for path in smk.input.table1:
        tables.setdefault(Path(path).parts[-3], {})["table1"] = pl.read_csv(path, infer_schema=False)
    for path in smk.input.attrition:
        tables.setdefault(Path(path).parts[-3], {})["attrition"] = pl.read_csv(path, infer_schema=False)
    keys = ("min_cell_count", "outcome", "cs_window", "prediction_horizon_h", "seed", "features", "databases")
    cfg = {k: smk.params[k] for k in keys}
    write_text(summary_rst(summaries, cfg, LINKS, tables), smk.output.rst)
    write_text(checklist_html(tripod_checklist(summaries, cfg)), smk.output.checklist)


run_script(main, snakemake)  # noqa: F821
