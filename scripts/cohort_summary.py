"""Cohort counts by CS group and headline cohort.json (rule cohort_summary)."""

import logging

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_json, read_parquet, run_script, write_csv, write_json
from sepsis_cs.understand import absent_variables, cohort_summary

log = logging.getLogger("sepsis_cs")


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    table, headline = cohort_summary(cohort, smk.params.min_cell_count)
    stats = read_json(smk.input.stats)
    # ingest statistics (raw stay counts, sepsis counts, timing) join the headline numbers
    headline = {**{k: v for k, v in stats.items() if not isinstance(v, (dict, list))}, **headline}
    # agreement with MIT-LCP mimic-code (rule concordance_mimic_code), when configured
    if smk.input.get("concordance"):
        headline.update(read_json(smk.input.concordance))
    headline["database"] = smk.wildcards.database
    headline["min_cell_count"] = smk.params.min_cell_count
    # time resolution and the dictionary's variables this database does not record (left out, never imputed)
    headline["resolution"] = smk.params.resolution
    absent = absent_variables(cohort, read_parquet(smk.input.timeseries), load_dictionary(smk.input.dictionary))
    headline["variables_absent_static"] = absent["static"]
    headline["variables_absent_hourly"] = absent["hourly"]
    for source, names in absent.items():
        if names:
            log.info("%s: %d %s variables of the dictionary are not recorded (left out of every analysis): %s",
                     smk.wildcards.database, len(names), source, ", ".join(names))
    write_csv(table, smk.output.table)
    write_json(headline, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
