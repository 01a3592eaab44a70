"""The risk models' cohort: stays alive and in the ICU at the prediction horizon (rule supervised_risk_cohort)."""

import logging

from sepsis_cs.io import format_count, read_parquet, run_script, suppress_count, write_json, write_parquet
from sepsis_cs.supervised import last_recorded_hour, risk_cohort

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config
    cohort = read_parquet(smk.input.cohort)
    last = None if "icu_discharge_h" in cohort.columns else last_recorded_hour(smk.input.timeseries)
    risk, info = risk_cohort(cohort, last, float(cfg["prediction_horizon_h"]), bool(cfg["supervised"]["landmark"]))
    k = int(cfg["min_cell_count"])
    log.info("landmark at %s h (%s): %s of %s stays at risk", cfg["prediction_horizon_h"], info["landmark_source"],
             format_count(info["n_risk_cohort"], k), format_count(info["n_stays"], k))
    write_parquet(risk, smk.output.cohort)
    write_json({key: (suppress_count(v, k) if key.startswith("n_") else v) for key, v in info.items()}, smk.output.info)


run_script(main, snakemake)  # noqa: F821
