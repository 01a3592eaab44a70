"""Build MIT-LCP mimic-code's MIMIC-IV concepts into DuckDB (rule mimic_code_reference)."""

from sepsis_cs.io import run_script, write_json
from sepsis_cs.reference import build_mimic_code


def main(smk):
    stats = build_mimic_code(smk.params.path, smk.params.mimic_code, smk.output.db, threads=smk.threads)
    write_json(stats, smk.output.stats)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
