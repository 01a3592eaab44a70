"""Trajectories by group and landmark GEE slope comparison (rule temporal_study)."""

import polars as pl

from sepsis_cs.analysis import labels_for
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv
from sepsis_cs.plotting import CS_COLOURS, PALETTE
from sepsis_cs.temporal import landmark_comparison, landmark_hours, landmark_values, slope_forest_plot, trajectories, trajectory_plot


def main(smk):
    cfg, db, outcome = smk.config["analyse"]["temporal"], smk.wildcards.database, smk.config["outcome"]
    k = int(smk.config["min_cell_count"])
    dictionary = load_dictionary(smk.input.dictionary)
    cohort, ts = read_parquet(smk.input.cohort), read_parquet(smk.input.timeseries)
    labels = labels_for(list(dictionary.hourly), dictionary)
    traj = trajectories(ts, cohort, outcome, k, tuple(cfg["cs_aligned_h"]))
    write_csv(traj.with_columns(pl.col("mean", "ci_low", "ci_high").round(4)), smk.output.trajectories)
    out_colours = {f"{outcome} = 0": PALETTE[2], f"{outcome} = 1": PALETTE[4]}
    savefig(trajectory_plot(traj, "time_zero", "cs", labels, CS_COLOURS, f"Hourly trajectories by CS group ({db}; mean, 95% CI)",
                            "hours since time zero"), smk.output.by_cs)
    savefig(trajectory_plot(traj, "time_zero", "outcome", labels, out_colours, f"Hourly trajectories by {outcome} ({db}; mean, 95% CI)",
                            "hours since time zero"), smk.output.by_outcome)
    savefig(trajectory_plot(traj, "cs_start", "cs", labels, CS_COLOURS, f"Treated stays aligned at CS start ({db}; mean, 95% CI)",
                            "hours since CS start"), smk.output.cs_start)
    lo, hi = smk.params.time_window["start_h"], smk.params.time_window["end_h"]
    landmarks = landmark_hours(cfg["landmarks_h"], lo, hi, smk.params.resolution)
    lm = landmark_values(ts, landmarks, int(cfg["landmark_window_h"]))
    table = landmark_comparison(lm, cohort, landmarks, k, cfg["working_correlation"])
    num = table.select_dtypes("float").columns
    table[num] = table[num].round(6)
    write_csv(pl.from_pandas(table), smk.output.landmarks)
    savefig(slope_forest_plot(table, labels, f"Landmark slopes {landmarks} h: CS vs no CS, GEE ({db})"), smk.output.slopes)


run_script(main, snakemake)  # noqa: F821
