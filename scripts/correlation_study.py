"""Associations between stay features, redundancy groups, CS-group contrasts (rule correlation_study)."""

import polars as pl

from sepsis_cs.analysis import design, feature_label, parse_feature, usable_columns
from sepsis_cs.correlation import (association_matrix, clustered_heatmap, difference_heatmap, group_contrast, outcome_association,
                                   outcome_association_plot, redundant_groups, top_pairs)
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_parquet


def main(smk):
    cfg = smk.config["analyse"]["correlation"]
    outcome, db = smk.config["outcome"], smk.wildcards.database
    dictionary = load_dictionary(smk.input.dictionary)
    df = design(read_parquet(smk.input.features), read_parquet(smk.input.cohort), outcome)
    cols, _ = usable_columns(df, [c for c in df.columns if c not in ("stay_id", "patient_id", "cs", outcome)])
    cat = categorical_columns(cols, dictionary)
    X = model_frame(df, cols, dictionary)
    assoc = association_matrix(X, cols, cat)
    write_parquet(pl.from_pandas(assoc.round(6).reset_index(names="feature")), smk.output.matrix)
    thr = float(cfg["redundancy_threshold"])
    groups = redundant_groups(assoc, thr)
    write_csv(pl.DataFrame({"group": list(range(1, len(groups) + 1)), "size": [len(g) for g in groups],
                            "members": ["; ".join(g) for g in groups]},
                           schema={"group": pl.Int64, "size": pl.Int64, "members": pl.String}), smk.output.groups)
    # readable subset: static covariates and the chosen statistics of each window
    stats = set(cfg["heatmap_statistics"])
    subset = [c for c in cols if parse_feature(c)[1] is None or parse_feature(c)[1] in stats]
    labels = {c: feature_label(c, dictionary, short=True) for c in cols}
    sub = assoc.loc[subset, subset]
    fig, order = clustered_heatmap(sub, labels, f"Associations between baseline and 0-{smk.config['prediction_horizon_h']} h features ({db})")
    savefig(fig, smk.output.heatmap)
    cs = df["cs"].to_pandas()
    contrast = group_contrast(X[subset], subset, cat, cs)
    order = [c for c in order if c in subset] + [c for c in subset if c not in order]
    savefig(difference_heatmap(contrast, labels, f"Associations within CS and no-CS stays and their difference ({db})", order),
            smk.output.by_cs)
    diff = top_pairs(contrast["difference"], 0.0).head(int(cfg["top_pairs"]))
    diff = diff.rename(columns={"association": "difference_cs_minus_no_cs"})
    diff["assoc_cs"] = [contrast["cs"].at[a, b] for a, b in zip(diff["feature_a"], diff["feature_b"])]
    diff["assoc_no_cs"] = [contrast["no_cs"].at[a, b] for a, b in zip(diff["feature_a"], diff["feature_b"])]
    write_csv(pl.from_pandas(diff.round(6)), smk.output.by_cs_table)
    y = df[outcome].to_pandas().astype(float)
    oa = outcome_association(X, cols, cat, y, cs)
    write_csv(pl.from_pandas(oa.round(6)), smk.output.outcome_table)
    savefig(outcome_association_plot(oa, labels, int(cfg["top_outcome"]), f"Association with {outcome} by CS group ({db})"),
            smk.output.outcome_figure)


run_script(main, snakemake)  # noqa: F821
