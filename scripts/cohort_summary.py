"""Cohort counts by CS group and headline cohort.json (rule cohort_summary)."""

from sepsis_cs.io import read_json, read_parquet, run_script, write_csv, write_json
from sepsis_cs.understand import cohort_summary


def main(smk):
    table, headline = cohort_summary(read_parquet(smk.input.cohort), smk.params.min_cell_count)
    stats = read_json(smk.input.stats)
    # ingest statistics (raw stay counts, sepsis counts, timing) join the headline numbers
    headline = {**{k: v for k, v in stats.items() if not isinstance(v, (dict, list))}, **headline}
    # agreement with MIT-LCP mimic-code (rule concordance_mimic_code), when configured
    if smk.input.get("concordance"):
        headline.update(read_json(smk.input.concordance))
    headline["database"] = smk.wildcards.database
    headline["min_cell_count"] = smk.params.min_cell_count
    write_csv(table, smk.output.table)
    write_json(headline, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
