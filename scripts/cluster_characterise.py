"""Describe the primary clustering of each population and match CS vs no-CS clusters (rule cluster_characterise)."""

import polars as pl

from sepsis_cs.clustering.characterise import (
    difference_tests, embeddings, match_clusters, numeric_matrix, outcome_rates, raw_profile, separating_variables,
    shared_and_specific, similarity_matrix, standardised_profile, trait_tests,
)
from sepsis_cs.clustering.consensus import sub_seed
from sepsis_cs.clustering.figures import embedding_figure, profile_heatmap, similarity_figure
from sepsis_cs.clustering.prep import load_population, prepare
from sepsis_cs.contract import BINARY_OUTCOMES
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_json, read_parquet, run_script, savefig, write_csv

NAMES = {"cs": "CS-treated", "no_cs": "untreated", "pooled": "pooled"}


def describe(smk, pop, features, cohort, dictionary, ref):
    cfg, seed, db = smk.config["cluster"], smk.config["seed"], smk.wildcards.database
    df, categorical, sub = load_population(features, cohort, dictionary, cfg, pop, smk.input.get("selected"))
    labels = read_parquet(smk.input[f"labels_{pop}"]).sort("stay_id")["cluster"].to_numpy()
    M = numeric_matrix(df, categorical).reindex(columns=ref.columns)
    # standardised on the pooled stays so that the profiles of the CS and no-CS solutions are comparable
    std, raw = standardised_profile(M, labels, ref), raw_profile(M, labels)
    long = std.reset_index().melt(id_vars="cluster", var_name="variable", value_name="std_mean").merge(
        raw.reset_index().melt(id_vars="cluster", var_name="variable", value_name="mean"), on=["cluster", "variable"]
    )
    write_csv(pl.from_pandas(long.sort_values(["cluster", "variable"]).round(6)), smk.output[f"profile_{pop}"])
    sep = separating_variables(M, labels, cfg["characterise"]["n_boot"], sub_seed(seed, db, pop, "smd"))
    write_csv(pl.from_pandas(sep.round(6)), smk.output[f"separating_{pop}"])
    outcomes = sub.select([c for c in BINARY_OUTCOMES if c in sub.columns]).to_pandas().astype(float)
    write_csv(pl.from_pandas(outcome_rates(outcomes, labels, smk.config["min_cell_count"])), smk.output[f"outcomes_{pop}"])
    title = f"{db}, {NAMES[pop]} stays"
    method = read_json(smk.input.primary)["method"]
    savefig(profile_heatmap(std, f"{title}: cluster profiles ({method}, k = {std.shape[0]})"), smk.output[f"heatmap_{pop}"])
    X = prepare(df, categorical, cfg.get("skew_threshold", 1.0)).X
    pca, tsne, idx = embeddings(X, sub_seed(seed, db, pop, "embed"), cfg["characterise"]["tsne_max_items"])
    cs = sub["cs"].cast(pl.Int8).to_numpy()
    savefig(embedding_figure(pca, tsne, idx, labels, cs, f"{title}: 2-D embeddings"), smk.output[f"embedding_{pop}"])
    return std, (M, labels)


def main(smk):
    dictionary = load_dictionary(smk.input.dictionary)
    features, cohort = read_parquet(smk.input.features), read_parquet(smk.input.cohort)
    cfg = smk.config["cluster"]
    pooled, cat, _ = load_population(features, cohort, dictionary, cfg, "pooled", smk.input.get("selected"))
    ref = numeric_matrix(pooled, cat)
    described = {pop: describe(smk, pop, features, cohort, dictionary, ref) for pop in ("cs", "no_cs", "pooled")}
    a, b = described["cs"][0], described["no_cs"][0]
    ch = cfg["characterise"]
    matches = match_clusters(a, b, float(ch["min_similarity"]))
    write_csv(pl.from_pandas(matches.rename(columns={"cluster_a": "cluster_cs", "cluster_b": "cluster_no_cs"}).round(6)), smk.output.matches)
    tests = trait_tests({"cs": described["cs"][1], "no_cs": described["no_cs"][1]}, ref)
    diffs = difference_tests(matches, described["cs"][1], described["no_cs"][1], list(ref.columns))
    tr = shared_and_specific(matches, tests, diffs, float(ch["trait_threshold"]), float(ch["trait_alpha"]))
    write_csv(pl.from_pandas(tr.round(6), schema_overrides={"cluster_cs": pl.Int64, "cluster_no_cs": pl.Int64}), smk.output.traits)
    savefig(similarity_figure(similarity_matrix(a, b), matches, f"{smk.wildcards.database}: CS vs no-CS cluster matching"), smk.output.matching)


run_script(main, snakemake)  # noqa: F821
