"""Per-stay features up to the prediction horizon (rule stay_features)."""

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import stay_features
from sepsis_cs.io import read_parquet, run_script, write_parquet


def main(smk):
    cfg = smk.config
    horizon = int(cfg["prediction_horizon_h"])
    windows = [(int(cfg["stay_features"]["baseline_start_h"]), 0), (0, horizon)]
    feats = stay_features(
        read_parquet(smk.input.cohort),
        read_parquet(smk.input.timeseries),
        load_dictionary(smk.input.dictionary),
        windows,
        tuple(cfg["stay_features"]["statistics"]),
    )
    write_parquet(feats, smk.output.features)


run_script(main, snakemake)  # noqa: F821
