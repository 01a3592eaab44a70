"""Headline numbers of the clustering phase: results/{database}/summary/clustering.json (rule cluster_summary)."""

import polars as pl
from sklearn.metrics import adjusted_rand_score

from sepsis_cs.clustering.characterise import describe_clusters
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_json, read_parquet, run_script, write_json


def main(smk):
    cfg = smk.config["cluster"]
    primary = cfg["primary_method"]
    out = {"database": smk.wildcards.database, "primary_method": primary, "choose_k_rule": cfg["choose_k"]}
    truth = read_parquet(smk.input.truth).sort("stay_id") if "truth" in smk.input.keys() else None
    for path in smk.input.fits:
        fit = read_json(path)
        pop, method = fit["population"], fit["method"]
        out[f"chosen_k_{pop}_{method}"] = fit["chosen_k"]
        out[f"pac_{pop}_{method}"] = fit["pac"]
        out[f"min_jaccard_{pop}_{method}"] = fit["min_jaccard"]
        if method == primary:
            out[f"chosen_k_{pop}"] = fit["chosen_k"]
            out[f"pac_{pop}"] = fit["pac"]
            out[f"silhouette_{pop}"] = fit["silhouette"]
            out[f"min_jaccard_{pop}"] = fit["min_jaccard"]
    if truth is not None:
        # validation only: planted phenotypes of the simulator vs the pooled clusterings
        for path in smk.input.pooled_labels:
            method = path.split("/")[-2]
            lab = read_parquet(path).sort("stay_id")
            if lab["stay_id"].to_list() != truth["stay_id"].to_list():
                raise ValueError("pooled labels and truth.parquet list different stays")
            ari = float(adjusted_rand_score(truth["phenotype"].to_numpy(), lab["cluster"].to_numpy()))
            out[f"ari_truth_pooled_{method}"] = ari
            if method == primary:
                out["ari_truth_pooled_chosen"] = ari
    treat = read_json(smk.input.treatment)
    out.update({k: v for k, v in treat.items() if k.startswith("interaction")})
    out["propensity_source"] = treat["propensity_source"]
    traj = read_json(smk.input.trajectory)
    out.update({k: v for k, v in traj.items() if not isinstance(v, list)})
    matches = pl.read_csv(smk.input.matches)
    paired = matches.drop_nulls(["cluster_cs", "cluster_no_cs"])
    out["n_matched_pairs_cs_no_cs"] = paired.height
    out["mean_match_similarity"] = float(paired["similarity"].mean()) if paired.height else None
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
