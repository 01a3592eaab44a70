"""Take a database supplied in contract format (rule ingest_contract)."""

import time

from sepsis_cs.io import read_table, run_script, write_json, write_parquet


def main(smk):
    t0 = time.perf_counter()
    cohort = read_table(smk.input.cohort)
    ts = read_table(smk.input.timeseries)
    write_parquet(cohort, smk.output.cohort)
    write_parquet(ts, smk.output.timeseries)
    write_json({"ingest_seconds": time.perf_counter() - t0, "n_icu_stays_raw": cohort.height}, smk.output.stats)


run_script(main, snakemake)  # noqa: F821
