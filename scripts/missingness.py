"""Missingness per variable and CS group, over time, and joint patterns (rule missingness)."""

from sepsis_cs.analysis import design, labels_for, profile_variables
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import window_tag
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv
from sepsis_cs.missingness import missingness_over_time, missingness_patterns, missingness_table, over_time_plot, pattern_plot


def main(smk):
    cfg, k, db = smk.config, int(smk.params.min_cell_count), smk.wildcards.database
    dictionary = load_dictionary(smk.input.dictionary)
    cohort, ts = read_parquet(smk.input.cohort), read_parquet(smk.input.timeseries)
    feats = design(read_parquet(smk.input.features), cohort)
    start = int(cfg["stay_features"]["baseline_start_h"])
    windows = [(start, 0), (0, int(cfg["prediction_horizon_h"]))]
    write_csv(missingness_table(cohort, ts, dictionary, windows, k), smk.output.table)
    over = missingness_over_time(ts, cohort, k)
    labels = labels_for(list(dictionary.variables), dictionary)
    savefig(over_time_plot(over, labels, f"Hourly measurements by CS group ({db})"), smk.output.over_time)
    variables = profile_variables(feats.columns, dictionary, window_tag(start, 0))
    cols = [v[0] for v in variables]
    pdf = feats.select(cols).to_pandas()
    # only variables with at least one missing value enter the pattern figure
    cols = [c for c in cols if pdf[c].isna().any()]
    pat, info = missingness_patterns(pdf, cols, k, int(cfg["understand"]["patterns_top"]))
    short = {c: labels_for(cols, dictionary)[c] for c in cols}
    savefig(pattern_plot(pat, short, info, f"Missingness patterns of the Table 1 variables ({db})", k), smk.output.patterns)


run_script(main, snakemake)  # noqa: F821
