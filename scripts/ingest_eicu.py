"""Ingest eICU-CRD into the cohort contract, plus APACHE IV predictions (rule ingest_eicu)."""

import polars as pl

from sepsis_cs.adapters import eicu
from sepsis_cs.adapters.common import run_ingest
from sepsis_cs.io import run_script, write_csv


def main(smk):
    res = run_ingest(eicu.ingest, smk)
    # external model: APACHE IV predicted hospital mortality (empty when apachePatientResult is absent)
    apache = res.extra.get("apache_iv", pl.DataFrame(schema={"stay_id": pl.String, "score": pl.Float64, "name": pl.String}))
    write_csv(apache, smk.output.apache)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
