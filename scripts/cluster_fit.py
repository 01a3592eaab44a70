"""Cluster one population with one method over the k grid; consensus, stability, chosen k (rule cluster_fit)."""

import logging

import pandas as pd
import polars as pl

from sepsis_cs.clustering.consensus import run_method, sub_seed
from sepsis_cs.clustering.figures import evidence_figure
from sepsis_cs.clustering.prep import load_population
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, savefig, suppress_count, write_csv, write_json, write_parquet


def main(smk):
    cfg = smk.config["cluster"]
    db, pop, method = smk.wildcards.database, smk.wildcards.population, smk.wildcards.method
    df, categorical, cohort = load_population(
        read_parquet(smk.input.features), read_parquet(smk.input.cohort), load_dictionary(smk.input.dictionary), cfg, pop, smk.input.get("selected")
    )
    res = run_method(method, df, categorical, cfg, sub_seed(smk.config["seed"], db, pop), threads=int(smk.threads))
    labels = res["labels"]
    logging.info(
        "%s %s: final partition fitted on %d of %d stays (cluster.max_pairwise_items = %s; the others assigned to the nearest centroid/medoid)",
        pop, method, res["n_fitted"], len(df), cfg.get("max_pairwise_items"),
    )
    mcc = int(smk.config["min_cell_count"])
    stab = pd.DataFrame(
        [
            {"cluster": int(c), "n": suppress_count(int((labels == c).sum()), mcc), "jaccard_mean": m, "jaccard_sd": s}
            for c, (m, s) in sorted(res["stability"].items())
        ]
    )
    table = res["table"].copy()
    # the smallest cluster of each k is a count of stays: suppressed under min_cell_count
    table["smallest"] = pd.array([suppress_count(int(v), mcc) if pd.notna(v) else None for v in table["smallest"]], dtype="Int64")
    table.insert(0, "method", method)
    table.insert(0, "population", pop)
    write_csv(pl.from_pandas(table.round(6)), smk.output.selection)
    write_csv(pl.from_pandas(stab.round(6)), smk.output.stability)
    write_parquet(pl.DataFrame({"stay_id": df.index.to_list(), "cluster": labels.astype(int)}), smk.output.labels)
    chosen = table.loc[table["chosen"]].iloc[0]
    logging.info("%s %s: %s", pop, method, res["reason"])
    jac = stab["jaccard_mean"].dropna()
    write_json(
        {
            "population": pop,
            "method": method,
            "n_stays": len(df),
            "n_fitted": int(res["n_fitted"]),
            "chosen_k": res["chosen_k"],
            "k_reason": res["reason"],
            # M3C null reference: smallest Bonferroni-adjusted p over the k grid, RCSI of the chosen k (or the largest)
            "null_p": res["null"]["null_p"],
            "rcsi": res["null"]["rcsi"],
            "n_null": res["null"]["n_null"],
            "null_reference": res["null"]["reference"],
            "min_cluster_size": res["min_size"],
            "pac": chosen["pac"],
            "silhouette": chosen["silhouette"],
            "bic": chosen["bic"],
            "noise_share": chosen["noise_share"],
            "min_jaccard": float(jac.min()) if len(jac) else None,
            "features": list(df.columns),
            "features_dropped_missing": list(df.attrs.get("dropped_missing", [])),
            "choose_k": cfg["choose_k"],
        },
        smk.output.fit,
    )
    p = res["null"]["null_p"]
    null_txt = f", null p = {p:.2g}" if p is not None else ""
    title = f"{db}, {pop.replace('_', '-')} stays, {method}: evidence for k (chosen k = {res['chosen_k']}, rule {cfg['choose_k']}{null_txt})"
    savefig(evidence_figure(table, res["cdf"], stab, title), smk.output.figure)


run_script(main, snakemake)  # noqa: F821
