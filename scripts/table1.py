"""Table 1 by CS group with unweighted and IPTW-weighted SMDs (rule table1)."""

import polars as pl

from sepsis_cs.analysis import design, profile_variables
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import window_tag
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv
from sepsis_cs.propensity import iptw_weights
from sepsis_cs.table1 import balance_plot, table_one


def main(smk):
    cfg, k = smk.config, int(smk.params.min_cell_count)
    dictionary = load_dictionary(smk.input.dictionary)
    df = design(read_parquet(smk.input.features), read_parquet(smk.input.cohort))
    ps = read_parquet(smk.input.propensity)
    df = df.join(ps.select("stay_id", "ps", "in_overlap"), on="stay_id", how="left")
    tag = window_tag(int(cfg["stay_features"]["baseline_start_h"]), 0)
    variables = profile_variables(df.columns, dictionary, tag)
    pdf = df.to_pandas()
    cs = pdf["cs"].to_numpy().astype(bool)
    w = iptw_weights(pdf["ps"].fillna(0.5).to_numpy(), cs, pdf["in_overlap"].fillna(False).to_numpy(bool))
    table, smd = table_one(pdf, variables, cs, w, k)
    write_csv(pl.from_pandas(table), smk.output.table)
    write_csv(pl.from_pandas(smd).with_columns(pl.col("smd_unweighted", "smd_iptw").round(6)), smk.output.smd)
    thr = float(cfg["understand"]["balance_threshold"])
    savefig(balance_plot(smd, f"Covariate balance before and after IPTW ({smk.wildcards.database})", thr), smk.output.balance)


run_script(main, snakemake)  # noqa: F821
