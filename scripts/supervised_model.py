"""Out-of-fold predictions of one internal risk model by nested patient-level CV (rule supervised_model)."""

import logging

import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import categorical_columns, resolve_features
from sepsis_cs.io import read_parquet, run_script, write_csv, write_parquet
from sepsis_cs.supervised import feature_groups, model_inputs, nested_cv

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config
    sup = cfg["supervised"]
    model = smk.wildcards.model
    dictionary = load_dictionary(smk.input.dictionary)
    feats = read_parquet(smk.input.features)
    cohort = read_parquet(smk.input.cohort)
    available = [c for c in feats.columns if c != "stay_id"]
    selected = smk.input.selected if smk.input.selected else None
    excluded = set(sup["exclude_features"])
    columns = [c for c in resolve_features(cfg["features"], [c for c in available if c not in excluded], selected, "outcome") if c not in excluded]
    X, y, groups = model_inputs(feats, cohort, columns, dictionary, cfg["outcome"])
    cat = categorical_columns(columns, dictionary)
    num = [c for c in columns if c not in cat]
    log.info("model %s: %d stays, %d features, %d events", model, len(y), len(columns), int(y.sum()))
    with threadpool_limits(limits=smk.threads):
        oof, tuned, importance = nested_cv(
            X, y, groups, model, num, cat, sup["models"][model] or {},
            n_outer=sup["outer_folds"], n_inner=sup["inner_folds"], seed=int(cfg["seed"]), n_jobs=smk.threads,
            scoring=sup["tuning_metric"], importance_repeats=sup["importance_repeats"], feature_groups=feature_groups(columns),
        )
    oof["score"] = oof["score"].round(6)
    write_parquet(pl.from_pandas(oof).sort("stay_id"), smk.output.oof)
    write_csv(pl.DataFrame(tuned), smk.output.tuning)
    imp = importance.groupby("variable", as_index=False)["importance"].mean().sort_values(["importance", "variable"], ascending=[False, True])
    imp["importance"] = imp["importance"].round(6)
    write_parquet(pl.from_pandas(imp.reset_index(drop=True)), smk.output.importance)


run_script(main, snakemake)  # noqa: F821
