"""Variable selection re-run inside every outer training fold of the nested CV (rule supervised_selection)."""

import logging

import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs.analysis import usable_columns
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import categorical_columns
from sepsis_cs.io import read_parquet, run_script, write_csv, write_json
from sepsis_cs.selection import SelectionSettings
from sepsis_cs.supervised import fold_selection, model_inputs, outer_folds, restrict_to_risk_cohort

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config
    sup = cfg["supervised"]
    dictionary = load_dictionary(smk.input.dictionary)
    feats = read_parquet(smk.input.features)
    cohort = restrict_to_risk_cohort(read_parquet(smk.input.cohort), read_parquet(smk.input.risk_cohort))
    excluded = set(sup["exclude_features"])
    candidates = [c for c in feats.columns if c != "stay_id" and c not in excluded]
    X, y, groups = model_inputs(feats, cohort, candidates, dictionary, cfg["outcome"])
    cols, dropped = usable_columns(X.reset_index(), candidates)
    X = X[cols]
    fold = outer_folds(y, groups, sup["outer_folds"], int(cfg["seed"]))
    s = SelectionSettings.from_config(cfg["analyse"], int(cfg["seed"]))
    s.redundancy_threshold = float(cfg["analyse"]["correlation"]["redundancy_threshold"])
    assoc = read_parquet(smk.input.associations).to_pandas().set_index("feature")
    log.info("selection in %d outer training folds: %d stays, %d candidates (%d constant or missing dropped)", len(set(fold)), len(y), len(cols), len(dropped))
    with threadpool_limits(limits=smk.threads):
        chosen, freq = fold_selection(X, y, groups, fold, categorical_columns(cols, dictionary), assoc, s)
    for k, c in chosen.items():
        log.info("fold %d: %d features selected", k, len(c))
    write_json({"folds": {str(k): v for k, v in chosen.items()}, "n_folds": len(chosen)}, smk.output.folds)
    write_csv(pl.from_pandas(freq).with_columns(pl.selectors.float().round(4)), smk.output.frequency)


run_script(main, snakemake)  # noqa: F821
