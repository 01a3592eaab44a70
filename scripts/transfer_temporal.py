"""Temporal auxiliary information on one target database: teacher/student distillation and
auxiliary targets for early prediction (rule transfer_temporal)."""

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.io import read_parquet, run_script, write_csv, write_json, write_parquet
from sepsis_cs.transfer import (
    aux_targets, build_temporal_features, category_levels, encode, settings_from_config,
    summarise_temporal, temporal_experiment, temporal_headline,
)


def main(smk):
    cfg = smk.config
    tcfg = cfg["transfer"]
    dictionary = load_dictionary(smk.input.dictionary)
    cohort = read_parquet(smk.input.cohort).sort("stay_id")
    ts = read_parquet(smk.input.timeseries)
    cohort = cohort.filter(cohort[cfg["outcome"]].is_not_null())
    stats = tuple(tcfg["statistics"]) if tcfg["statistics"] else tuple(cfg["stay_features"]["statistics"])
    early, full = build_temporal_features(
        cohort, ts, dictionary, int(cfg["stay_features"]["baseline_start_h"]),
        int(tcfg["early_horizon_h"]), int(smk.params.time_window["end_h"]), stats,
    )
    cols_e = [c for c in early.columns if c != "stay_id"]
    cols_f = [c for c in full.columns if c != "stay_id"]
    cats = categorical_columns(cols_f, dictionary)
    levels = category_levels(cats, dictionary, cohort.to_pandas())
    E = encode(model_frame(early, cols_e, dictionary), set(cats), levels)
    F = encode(model_frame(full, cols_f, dictionary), set(cats), levels)
    aux = aux_targets(cohort, ts, int(tcfg["aux_horizon_h"]))
    aux_arrays = {c: aux[c].to_numpy() for c in aux.columns if c != "stay_id" and aux[c].is_not_null().sum() >= 20}
    st = settings_from_config(tcfg, cols_f, dictionary)
    runs = temporal_experiment(
        E, F, cohort[cfg["outcome"]].to_numpy().astype(int), cohort["patient_id"].to_numpy(), aux_arrays,
        int(tcfg["temporal_repeats"]), tcfg["temporal_train_sizes"], float(tcfg["test_share"]),
        float(tcfg["imitation"]), int(cfg["seed"]), st,
    )
    table = summarise_temporal(runs, float(tcfg["test_share"]))
    write_parquet(runs, smk.output.runs)
    write_csv(table, smk.output.table)
    write_json(temporal_headline(table, list(aux_arrays)), smk.output.summary)


run_script(main, snakemake)  # noqa: F821
