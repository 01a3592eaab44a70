"""Metrics of internal and external models with patient-level bootstrap CIs (rule supervised_evaluate)."""

import logging

import numpy as np
import polars as pl

from sepsis_cs.errors import ConfigError
from sepsis_cs.io import read_json, read_parquet, run_script, savefig, write_csv, write_json
from sepsis_cs.supervised import (
    evaluation_tables, is_empty, load_predictions, plot_calibration, plot_decision_curve, restrict_to_risk_cohort, score_frame,
)

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config
    sup = cfg["supervised"]
    db = smk.wildcards.database
    # every model is evaluated on the same stays: those at risk at the prediction horizon
    cohort = restrict_to_risk_cohort(read_parquet(smk.input.cohort), read_parquet(smk.input.risk_cohort))
    internal = {m: read_parquet(p).to_pandas() for m, p in zip(smk.params.models, smk.input.oof)}
    external, counts = {}, {}
    # fitted external models (rule external_model_apply): applied / not-applicable counts, already suppressed
    applied = {a["model"]: a for a in map(read_json, smk.input.applied)}
    for name, a in applied.items():
        counts.update({f"n_applied_{name}": a["n_applied"], f"n_not_applicable_{name}": a["n_not_applicable"]})
    for path, name in zip(smk.input.external, smk.params.external_names):
        if name == "apache_iv" and is_empty(path):
            log.warning("APACHE IV: the eICU adapter wrote no prediction for this cohort; not evaluated")
            continue
        if name in applied and is_empty(path):
            log.warning("external model %s: no stay of this database has its mapped inputs; not evaluated", name)
            continue
        df, c = load_predictions(path, cohort["stay_id"].cast(pl.String).to_list(), name)
        ename = df["name"].iloc[0]
        if ename in internal or ename in external:
            raise ConfigError("config", "external_models", f"model name '{ename}' used twice; give each external model its own name")
        external[ename] = df
        if ename not in applied:  # a prediction file's counts (a fitted model's are its application counts)
            counts.update({f"n_{k.removeprefix('n_')}_{ename}": v for k, v in c.items()})
        log.info("external %s: %d predictions, %d not in the cohort (dropped)", ename, c["n_file"], c["n_not_in_cohort"])
    frame = score_frame(cohort, cfg["outcome"], internal, external)
    names = list(internal) + list(external)
    metrics, by_group, comparison, summary = evaluation_tables(frame, list(internal), list(external), sup["n_boot"], int(cfg["seed"]), cfg["min_cell_count"])
    write_csv(pl.from_pandas(metrics).with_columns(pl.selectors.float().round(4)), smk.output.metrics)
    write_csv(pl.from_pandas(by_group).with_columns(pl.selectors.float().round(4)), smk.output.by_group)
    write_csv(pl.from_pandas(comparison).with_columns(pl.selectors.float().round(4)), smk.output.comparison)
    n_ext = frame.dropna(subset=list(external)).shape[0] if external else len(frame)
    savefig(plot_calibration(frame, names, sup["calibration_bins"], f"Calibration, {db} ({cfg['outcome']})"), smk.output.calibration)
    lo, hi, step = sup["decision_thresholds"]
    savefig(plot_decision_curve(frame, names, np.arange(lo, hi + 1e-9, step), f"Decision curve, {db}"), smk.output.decision)
    risk = read_json(smk.input.risk_info)
    write_json({**summary, **counts, **risk, "n_stays_evaluated": len(frame), "n_stays_all_models": n_ext}, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
