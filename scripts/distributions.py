"""Distributions of the Table 1 variables by CS group (rule distributions)."""

from sepsis_cs.analysis import design, profile_variables
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import window_tag
from sepsis_cs.io import read_parquet, run_script, savefig
from sepsis_cs.missingness import distribution_plot


def main(smk):
    cfg, k = smk.config, int(smk.params.min_cell_count)
    dictionary = load_dictionary(smk.input.dictionary)
    df = design(read_parquet(smk.input.features), read_parquet(smk.input.cohort))
    tag = window_tag(int(cfg["stay_features"]["baseline_start_h"]), 0)
    variables = profile_variables(df.columns, dictionary, tag)
    pdf = df.select(["cs", *[v[0] for v in variables]]).to_pandas()
    fig = distribution_plot(pdf, variables, pdf["cs"].to_numpy(), k, f"Baseline distributions by CS group ({smk.wildcards.database})")
    savefig(fig, smk.output.figure)


run_script(main, snakemake)  # noqa: F821
