"""Clusters of hourly trajectories after time zero, cross-tabulated with the static pooled clusters (rule cluster_trajectory)."""

import logging

import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs.clustering.consensus import sub_seed
from sepsis_cs.clustering.figures import trajectory_figure
from sepsis_cs.clustering.trajectory import cluster_trajectories, crosstab, standardise_blocks, trajectory_bin_h, trajectory_matrix
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json, write_parquet

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config["cluster"]["trajectory"]
    db = smk.wildcards.database
    labels = read_parquet(smk.input.labels).sort("stay_id")
    ts = read_parquet(smk.input.timeseries)
    present = sorted(set(ts["variable"].unique().to_list()))
    variables = [v for v in cfg["variables"] if v in present]
    if not variables:  # none of the configured variables recorded (e.g. a trial's daily forms): those it has, said in the json
        variables = present[: len(cfg["variables"])]
        log.info("%s: none of cluster.trajectory.variables is recorded; trajectories of %s instead", db, ", ".join(variables))
    end_h = min(int(cfg["end_h"]), int(smk.params.time_window["end_h"]))
    bin_h = trajectory_bin_h(int(cfg["bin_h"]), smk.params.resolution)
    T, names = trajectory_matrix(ts, labels["stay_id"].to_list(), variables, bin_h, end_h)
    with threadpool_limits(int(smk.threads)):
        traj, table = cluster_trajectories(standardise_blocks(T, len(variables)), range(int(cfg["k_min"]), int(cfg["k_max"]) + 1), sub_seed(smk.config["seed"], db, "trajectory"))
    ct, stats = crosstab(labels["cluster"].to_numpy(), traj, smk.config["min_cell_count"])
    write_parquet(pl.DataFrame({"stay_id": labels["stay_id"], "trajectory_cluster": traj}), smk.output.labels)
    write_csv(pl.from_pandas(ct), smk.output.crosstab)
    write_csv(pl.from_pandas(table.round(6)), smk.output.selection)
    write_json({**stats, "chosen_k_trajectory": int(table.loc[table["chosen"], "k"].iloc[0]), "variables": variables, "bin_h": bin_h,
                "variables_absent": [v for v in cfg["variables"] if v not in variables]}, smk.output.summary)
    savefig(trajectory_figure(T, names, traj, variables, f"{db}: mean trajectory per trajectory cluster"), smk.output.figure)


run_script(main, snakemake)  # noqa: F821
