"""Ingest MIMIC-IV into the cohort contract (rule ingest_mimic_iv)."""

from functools import partial

from sepsis_cs.adapters import mimic_iv
from sepsis_cs.adapters.common import run_ingest
from sepsis_cs.io import run_script


def main(smk):
    # databases.<name>.derived: bring-your-own mimic-code tables (None = computed)
    run_ingest(partial(mimic_iv.ingest, derived=smk.params.derived), smk)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
