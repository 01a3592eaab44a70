"""Risk models and CS benefit confronted with the clusters (rule supervised_confront)."""

import polars as pl

from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json
from sepsis_cs.errors import UserInputError
from sepsis_cs.supervised import confront_clusters, is_empty, load_predictions, plot_cluster_benefit, restrict_to_risk_cohort, score_frame


def main(smk):
    cfg = smk.config
    sup = cfg["supervised"]
    cohort = restrict_to_risk_cohort(read_parquet(smk.input.cohort), read_parquet(smk.input.risk_cohort))
    labels = read_parquet(smk.input.labels)
    for c in ("stay_id", "cluster"):
        if c not in labels.columns:
            raise UserInputError(smk.input.labels, c, "missing column; expected stay_id, cluster")
    internal = {m: read_parquet(p).to_pandas() for m, p in zip(smk.params.models, smk.input.oof)}
    ids = cohort["stay_id"].cast(pl.String).to_list()
    external = {}
    for path, name in zip(smk.input.external, smk.params.external_names):
        if is_empty(path):  # APACHE IV absent, or a fitted model applicable to no stay (reported by supervised_evaluate)
            continue
        df = load_predictions(path, ids, name)[0]
        external[df["name"].iloc[0]] = df
    scores = score_frame(cohort, cfg["outcome"], internal, external)
    classes = read_parquet(smk.input.classes).to_pandas()
    cate_frames = {}
    for lr, p in zip(smk.params.learners, smk.input.cate):
        c = classes.loc[classes["learner"] == lr, ["stay_id", "benefit_class"]]
        cate_frames[lr] = read_parquet(p).to_pandas().astype({"stay_id": str}).merge(c, on="stay_id", how="left")
    importances = {m: read_parquet(p).to_pandas() for m, p in zip(smk.params.models, smk.input.importance)}
    feats = read_parquet(smk.input.features).to_pandas().set_index("stay_id")
    per_cluster, dist, frame, summary = confront_clusters(
        labels.select(pl.col("stay_id").cast(pl.String), pl.col("cluster").cast(pl.String)).to_pandas(),
        scores, list(internal) + list(external), cate_frames, importances, feats,
        sup["n_boot"], int(cfg["seed"]), cfg["min_cell_count"], sup["top_k"],
    )
    write_csv(pl.from_pandas(per_cluster).with_columns(pl.selectors.float().round(4)), smk.output.per_cluster)
    write_csv(pl.from_pandas(dist).with_columns(pl.selectors.float().round(4)), smk.output.distribution)
    primary = sup["cate"]["primary_learner"]
    savefig(plot_cluster_benefit(frame, list(internal)[0], primary if primary in cate_frames else list(cate_frames)[0], f"Risk and CS benefit per cluster, {smk.wildcards.database}"), smk.output.figure)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
