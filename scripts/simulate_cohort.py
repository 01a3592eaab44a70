"""Simulate one database of the contract with known ground truth (rule simulate_cohort)."""

import time

from sepsis_cs.io import run_script, write_json, write_parquet
from sepsis_cs.simulate import SimulationSettings, simulate


def main(smk):
    t0 = time.perf_counter()
    windows = {"time_window": smk.params.time_window, "cs_window": smk.params.cs_window}
    settings = SimulationSettings.from_config(smk.params.db, windows)
    cohort, ts, truth = simulate(settings, seed=smk.params.seed, database=smk.wildcards.database)
    write_parquet(cohort, smk.output.cohort)
    write_parquet(ts, smk.output.timeseries)
    write_parquet(truth, smk.output.truth)
    write_json({"ingest_seconds": time.perf_counter() - t0, "n_icu_stays_raw": cohort.height}, smk.output.stats)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
