"""Learning curves, negative-transfer guard, shortcut check and headline numbers of one
source -> target pair (rule transfer_summary)."""

import json

import polars as pl

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json
from sepsis_cs.transfer import (
    learning_curve_figure, pair_summary, prepare_pair, select_strategies, settings_from_config,
    shortcut_check, summarise_curves,
)


def main(smk):
    cfg = smk.config
    tcfg = cfg["transfer"]
    curves = pl.concat([read_parquet(p) for p in smk.input.curves], how="vertical_relaxed")
    table = summarise_curves(curves, float(tcfg["test_share"]))
    selection = select_strategies(curves, float(tcfg["guard_margin"]), float(tcfg["guard_z"]))
    summary = pair_summary(curves, table, selection, int(tcfg["headline_size"]), float(tcfg["test_share"]))
    summary.update(json.loads(open(smk.input.temporal).read()))
    dictionary = load_dictionary(smk.input.dictionary)
    src, tgt, cols, levels = prepare_pair(
        read_parquet(smk.input.source_features), read_parquet(smk.input.source_cohort),
        read_parquet(smk.input.target_features), read_parquet(smk.input.target_cohort),
        dictionary, cfg["outcome"], "all", None, for_shortcuts=True,
    )
    shortcuts = shortcut_check(src, tgt, settings_from_config(tcfg, cols, dictionary), dictionary, levels,
                               int(cfg["seed"]), top=int(tcfg["shortcut_top"]))
    summary["domain_auroc"] = float(shortcuts["domain_auroc"][0]) if shortcuts.height else None
    summary["n_flagged_shortcuts"] = int(shortcuts["flagged"].sum())
    summary["top_shortcut"] = shortcuts["feature"][0] if shortcuts.height else None
    summary["source"], summary["target"] = smk.wildcards.source, smk.wildcards.target
    if smk.params.unrelated:
        summary[f"gain_unrelated_best_vs_target_only_n{tcfg['headline_size']}"] = summary.get(f"gain_best_vs_target_only_n{tcfg['headline_size']}")
    write_csv(table, smk.output.table)
    write_csv(selection, smk.output.selection)
    write_csv(shortcuts, smk.output.shortcuts)
    savefig(learning_curve_figure(table, f"{smk.wildcards.source} \u2192 {smk.wildcards.target}"), smk.output.figure)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
