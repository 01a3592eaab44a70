"""Headline numbers of the clustering phase: results/{database}/summary/clustering.json (rule cluster_summary)."""

import polars as pl
from sklearn.metrics import adjusted_rand_score

from sepsis_cs.clustering.characterise import describe_clusters
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_json, read_parquet, run_script, write_json


def _ari(truth, path):
    lab = read_parquet(path).sort("stay_id")
    if lab["stay_id"].to_list() != truth["stay_id"].to_list():
        raise ValueError("pooled labels and truth.parquet list different stays")
    return float(adjusted_rand_score(truth["phenotype"].to_numpy(), lab["cluster"].to_numpy()))


def main(smk):
    cfg = smk.config["cluster"]
    primary = read_json(smk.input.primary)
    method = primary["method"]
    null_cfg = cfg.get("null_reference", {})
    out = {
        "database": smk.wildcards.database,
        "primary_rule": primary["rule"],
        "primary_method": method,
        "primary_reason": primary["reason"],
        "choose_k_rule": cfg["choose_k"],
        "null_reference": null_cfg.get("generator"),
        "n_null": int(null_cfg.get("n_ref", 0)),
        "null_alpha": null_cfg.get("alpha"),
    }
    truth = read_parquet(smk.input.truth).sort("stay_id") if "truth" in smk.input.keys() else None
    for path in smk.input.fits:
        fit = read_json(path)
        pop, m = fit["population"], fit["method"]
        for key in ("chosen_k", "null_p", "rcsi", "pac", "min_jaccard"):
            out[f"{key}_{pop}_{m}"] = fit.get(key)
        if m == method:
            out[f"chosen_k_{pop}"] = primary[f"chosen_k_{pop}"]
            out[f"null_p_{pop}"] = fit.get("null_p")
            out[f"rcsi_{pop}"] = fit.get("rcsi")
            out[f"k_reason_{pop}"] = fit.get("k_reason") if primary["clusters_kept"] else primary["reason"]
            out[f"min_cluster_size_{pop}"] = fit.get("min_cluster_size")
            out[f"pac_{pop}"] = fit["pac"]
            out[f"silhouette_{pop}"] = fit["silhouette"]
            out[f"min_jaccard_{pop}"] = fit["min_jaccard"]
    if truth is not None:
        # validation only (never used to choose anything): planted phenotypes of the simulator vs the pooled clusterings
        for path in smk.input.pooled_labels:
            out[f"ari_truth_pooled_{path.split('/')[-2]}"] = _ari(truth, path)
        out["ari_truth_pooled_chosen"] = _ari(truth, smk.input.primary_pooled)
    treat = read_json(smk.input.treatment)
    out.update({k: v for k, v in treat.items() if k.startswith("interaction")})
    out["propensity_source"] = treat["propensity_source"]
    traj = read_json(smk.input.trajectory)
    out.update({k: v for k, v in traj.items() if not isinstance(v, list)})
    matches = pl.read_csv(smk.input.matches)
    paired = matches.filter(pl.col("cluster_cs").is_not_null() & pl.col("cluster_no_cs").is_not_null())
    out["n_matched_pairs_cs_no_cs"] = paired.height
    out["n_unmatched_cs"] = matches.filter(pl.col("cluster_no_cs").is_null()).height
    out["n_unmatched_no_cs"] = matches.filter(pl.col("cluster_cs").is_null()).height
    out["mean_match_similarity"] = float(paired["similarity"].mean()) if paired.height and paired["similarity"].is_not_null().any() else None
    traits = pl.read_csv(smk.input.traits)
    for where in ("shared", "cs only", "no_cs only", "opposite"):
        out[f"n_traits_{where.replace(' ', '_')}"] = traits.filter(pl.col("found_in") == where).height
    descriptions = describe_clusters(
        pl.read_csv(smk.input.pooled_profile),
        pl.read_csv(smk.input.pooled_outcomes),
        load_dictionary(smk.input.dictionary),
        smk.config["outcome"],
        int(smk.config["min_cell_count"]),
    )
    out.update({f"description_pooled_{k}": v for k, v in descriptions.items()})
    write_json(out, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
