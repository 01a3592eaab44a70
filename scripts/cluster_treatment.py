"""CS vs no-CS outcome difference per pooled cluster by IPTW, bootstrap CIs, interaction test (rule cluster_treatment)."""

import numpy as np
import polars as pl

from sepsis_cs.clustering.consensus import sub_seed
from sepsis_cs.clustering.figures import forest_figure
from sepsis_cs.clustering.treatment import cluster_effects
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.errors import UserInputError
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json


def main(smk):
    cfg = smk.config["cluster"]["treatment"]
    db, outcome = smk.wildcards.database, smk.config["outcome"]
    cohort = read_parquet(smk.input.cohort).sort("stay_id")
    labels = read_parquet(smk.input.labels).sort("stay_id")
    if labels["stay_id"].to_list() != cohort["stay_id"].to_list():
        raise UserInputError(smk.input.labels, "stay_id", "expected the stays of cohort.parquet")
    dictionary = load_dictionary(smk.input.dictionary)
    if "propensity" in smk.input.keys():
        ps = cohort.select("stay_id").join(read_parquet(smk.input.propensity), on="stay_id", how="left")
        ps_shared, keep = ps["ps"].fill_null(np.nan).to_numpy(), ps["in_overlap"].fill_null(False).to_numpy()
        source, Xdf, cat = "shared propensity_model", None, []
    else:
        static = [c for c in cohort.columns if c in dictionary.static]
        Xdf = model_frame(cohort, static, dictionary)
        cat = categorical_columns(static, dictionary)
        ps_shared, keep, source = None, None, "within-cluster logistic model on static covariates"
    y = cohort[outcome].cast(pl.Float64).to_numpy()
    t = cohort["cs"].cast(pl.Int8).to_numpy()
    table, _, test = cluster_effects(
        y, t, labels["cluster"].to_numpy(), Xdf, cat, ps_shared, keep, cfg["n_boot"],
        sub_seed(smk.config["seed"], db, "treatment"), cfg["trim"], smk.config["min_cell_count"], threads=int(smk.threads),
    )
    table.insert(1, "outcome", outcome)
    write_csv(pl.from_pandas(table.round(6)), smk.output.table)
    write_json({**test, "propensity_source": source, "outcome": outcome}, smk.output.test)
    savefig(forest_figure(table, f"{db}: CS vs no-CS {outcome} by pooled cluster (interaction p = {test['interaction_p']:.3g})"), smk.output.figure)


run_script(main, snakemake)  # noqa: F821
