"""Variable selection for the outcome or for CS assignment (rule variable_selection)."""

import polars as pl

from sepsis_cs.analysis import baseline_columns, design, feature_label, usable_columns
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json
from sepsis_cs.selection import SelectionSettings, select_features, selection_plot


def main(smk):
    task, db = smk.wildcards.task, smk.wildcards.database
    cfg = smk.config["analyse"]
    target = "cs" if task == "treatment" else smk.config["outcome"]
    dictionary = load_dictionary(smk.input.dictionary)
    df = design(read_parquet(smk.input.features), read_parquet(smk.input.cohort), target)
    df = df.filter(pl.col(target).is_not_null())
    candidates = [c for c in df.columns if c not in ("stay_id", "patient_id", "cs", target)]
    if task == "treatment":
        candidates = baseline_columns(candidates, dictionary)
    cols, dropped = usable_columns(df, candidates)
    s = SelectionSettings.from_config(cfg, int(smk.config["seed"]) + (0 if task == "outcome" else 1))
    s.redundancy_threshold = float(cfg["correlation"]["redundancy_threshold"])
    assoc = read_parquet(smk.input.associations).to_pandas().set_index("feature")
    X = model_frame(df, cols, dictionary)
    table, info = select_features(X, df[target].to_numpy().astype(int), df["patient_id"].to_numpy(),
                                  categorical_columns(cols, dictionary), assoc, s)
    info["candidates_dropped_constant_or_missing"] = len(dropped)
    info["target"] = target
    table.insert(1, "label", [feature_label(f, dictionary) for f in table["feature"]])
    num = table.select_dtypes("float").columns
    table[num] = table[num].astype(float).round(6)
    write_csv(pl.from_pandas(table), smk.output.table)
    info["selected"] = table.loc[table["selected"], "feature"].tolist()
    write_json(info, smk.output.info)
    what = "CS assignment" if task == "treatment" else target
    labels = {f: feature_label(f, dictionary, short=True) for f in table["feature"]}
    fig = selection_plot(table, labels, int(cfg["selection"]["plot_top"]), f"Variable ranking for {what} ({db})")
    savefig(fig, smk.output.figure)


run_script(main, snakemake)  # noqa: F821
