"""Pick the primary clustering method by the rule fixed in the config and copy its labels (rule cluster_primary)."""

import polars as pl

from sepsis_cs.clustering.primary import choose_primary
from sepsis_cs.io import read_json, read_parquet, run_script, write_json, write_parquet


def main(smk):
    cfg = smk.config["cluster"]
    fits = {}
    for path in smk.input.fits:
        fit = read_json(path)
        if fit["population"] == "pooled":
            fits[fit["method"]] = fit
    method, keep, reason = choose_primary(fits, cfg)
    chosen = {}
    for pop in ("cs", "no_cs", "pooled"):
        path = next(p for p in smk.input.labels if p.endswith(f"/{pop}/{method}/labels.parquet"))
        lab = read_parquet(path).sort("stay_id")
        if not keep:
            lab = lab.with_columns(pl.lit(0, dtype=lab["cluster"].dtype).alias("cluster"))
        write_parquet(lab, smk.output[f"labels_{pop}"])
        chosen[pop] = int(lab["cluster"].filter(lab["cluster"] >= 0).n_unique())
    write_json(
        {"rule": cfg.get("primary_rule", "fixed"), "method": method, "clusters_kept": keep, "reason": reason, **{f"chosen_k_{p}": k for p, k in chosen.items()}},
        smk.output.info,
    )


run_script(main, snakemake)  # noqa: F821
