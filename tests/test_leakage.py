"""Leakage guards: features never read past the prediction horizon."""

import numpy as np
import polars as pl

from sepsis_cs.features import stay_features


def test_post_horizon_signal_is_not_used(sim_small, dictionary):
    cohort, ts, _ = sim_small
    horizon = 24
    # plant the outcome itself into every hour after the horizon, as lactate 1 or 20
    y = cohort.select("stay_id", "hospital_mortality")
    late = (
        ts.filter(pl.col("hour") > horizon)
        .select("stay_id", "hour")
        .unique()
        .join(y, on="stay_id")
        .with_columns(pl.lit("lactate").alias("variable"), (1.0 + 19.0 * pl.col("hospital_mortality")).alias("value"))
        .select("stay_id", "hour", "variable", "value")
    )
    planted = pl.concat([ts.filter(~((pl.col("variable") == "lactate") & (pl.col("hour") > horizon))), late.with_columns(pl.col("hour").cast(pl.Int32))])
    clean = stay_features(cohort, ts, dictionary, [(-24, 0), (0, horizon)])
    leaky = stay_features(cohort, planted, dictionary, [(-24, 0), (0, horizon)])
    assert clean.equals(leaky)
    # and the plant is real: a window past the horizon does see it
    beyond = stay_features(cohort, planted, dictionary, [(0, 72)]).join(y, on="stay_id")
    r = np.corrcoef(beyond["lactate__max_0_72"].fill_null(0).to_numpy(), beyond["hospital_mortality"].to_numpy())[0, 1]
    assert r > 0.8
