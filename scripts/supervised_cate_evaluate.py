"""c-for-benefit, Qini curve, calibration for benefit and benefit classes (rule supervised_cate_evaluate)."""

import polars as pl

from sepsis_cs.cate import evaluate_learners, plot_benefit_evaluation
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json


def main(smk):
    cfg = smk.config
    cc = cfg["supervised"]["cate"]
    cohort = read_parquet(smk.input.cohort)
    patient_of = dict(zip(cohort["stay_id"].cast(pl.String).to_list(), cohort["patient_id"].cast(pl.String).to_list()))
    frames = {lr: read_parquet(p).to_pandas() for lr, p in zip(smk.params.learners, smk.input.cate)}
    table, cal, curves, summary = evaluate_learners(frames, patient_of, cc["benefit_bins"], cfg["supervised"]["n_boot"], int(cfg["seed"]), cc["primary_learner"], cfg["min_cell_count"])
    write_csv(pl.from_pandas(table).with_columns(pl.selectors.float().round(4)), smk.output.table)
    write_csv(pl.from_pandas(cal).with_columns(pl.selectors.float().round(4)), smk.output.calibration)
    savefig(plot_benefit_evaluation(curves, cal, f"CS benefit on {smk.wildcards.database} (stays in overlap)"), smk.output.figure)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
