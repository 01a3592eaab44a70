"""Headline numbers of the supervised phase (rule supervised_summary).

On simulated databases (and only in this validation step) the estimated benefit of each learner
is compared with the true individual effect of the simulator.
"""

import polars as pl
from scipy.stats import spearmanr

from sepsis_cs.io import read_json, read_parquet, run_script, write_json
from sepsis_cs.simulate import BENEFITING_PHENOTYPES


def main(smk):
    summary = {}
    for part in smk.input.parts:
        summary.update(read_json(part))
    if smk.input.truth:
        truth = read_parquet(smk.input.truth).select(pl.col("stay_id").cast(pl.String), "ite", "phenotype")
        for learner, path in zip(smk.params.learners, smk.input.cate):
            m = read_parquet(path).join(truth, on="stay_id", how="inner")
            summary[f"cate_spearman_truth_{learner}"] = float(spearmanr(m["benefit"], m["ite"])[0])
            summary[f"cate_mae_truth_{learner}"] = float((m["benefit"] - m["ite"]).abs().mean())
            if learner == summary.get("primary_learner"):
                benefiting = m["phenotype"].is_in(list(BENEFITING_PHENOTYPES))
                sensitive = m["benefit_class"] == "cs_sensitive"
                summary["truth_benefiting_share_all"] = float(benefiting.mean())
                summary["truth_benefiting_share_cs_sensitive"] = float(benefiting.filter(sensitive).mean()) if sensitive.any() else None
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
