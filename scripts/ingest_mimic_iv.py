"""Ingest MIMIC-IV into the cohort contract (rule ingest_mimic_iv)."""

import time

from sepsis_cs.adapters import mimic_iv
from sepsis_cs.adapters.common import load_concepts, public_stats, suppress_attrition
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import run_script, write_csv, write_json, write_parquet


def definition_config(smk):
    """The config sections the cohort definition reads (declared as the rule's params)."""
    return {k: smk.params[k] for k in ("cohort_definition", "time_window", "cs_window")}


def main(smk):
    t0 = time.perf_counter()
    res = mimic_iv.ingest(
        smk.params.path, smk.wildcards.database, definition_config(smk), load_concepts(smk.input.concepts), load_dictionary(smk.input.dictionary)
    )
    write_parquet(res.cohort, smk.output.cohort)
    write_parquet(res.timeseries, smk.output.timeseries)
    write_csv(suppress_attrition(res.attrition, smk.params.min_cell_count), smk.output.attrition)
    stats = public_stats(res.stats, smk.params.min_cell_count, res.attrition)
    stats["ingest_seconds"] = round(time.perf_counter() - t0, 2)
    write_json(stats, smk.output.stats)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
