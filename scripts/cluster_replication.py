"""Transport of the pooled clustering between analysed databases: ARI and Cohen's kappa (rule cluster_replication)."""

import polars as pl

from sepsis_cs.clustering.consensus import sub_seed
from sepsis_cs.clustering.prep import load_population
from sepsis_cs.clustering.replication import replicate
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, write_csv


def main(smk):
    cfg = smk.config["cluster"]
    dictionary = load_dictionary(smk.input.dictionary)
    dbs = list(smk.params.databases)
    data = {}
    for i, db in enumerate(dbs):
        df, cat, _ = load_population(read_parquet(smk.input.features[i]), read_parquet(smk.input.cohorts[i]), dictionary, cfg, "pooled")
        lab = read_parquet(smk.input.labels[i]).sort("stay_id")["cluster"].to_numpy()
        data[db] = (df, cat, lab)
    rows = []
    for src in dbs:
        for tgt in dbs:
            if src == tgt:
                continue
            Xs, cat, ys = data[src]
            Xt, _, yt = data[tgt]
            rows.append({"source": src, "target": tgt, **replicate(Xs, ys, Xt, yt, cat, sub_seed(smk.config["seed"], src, tgt))})
    write_csv(pl.DataFrame(rows).with_columns(pl.col("ari", "kappa").round(6)), smk.output.table)


run_script(main, snakemake)  # noqa: F821
