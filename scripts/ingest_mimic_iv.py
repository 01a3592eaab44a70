"""Ingest MIMIC-IV into the cohort contract (rule ingest_mimic_iv)."""

from sepsis_cs.adapters import mimic_iv
from sepsis_cs.adapters.common import run_ingest
from sepsis_cs.io import run_script


def main(smk):
    run_ingest(mimic_iv.ingest, smk)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
