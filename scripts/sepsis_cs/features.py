"""Per-stay features from the contract files, using only data up to a given hour.

Feature names are ``<variable>__<statistic>_<window>``, for instance ``lactate__max_0_24``
(maximum lactate between time zero and hour 24) or ``map__last_m24_0`` (last MAP before
time zero).  Static covariates keep their dictionary name.  :func:`stay_features` is the
one place where hourly data become model inputs, so the prediction horizon is enforced
here: no statistic ever reads an hour after ``end_h``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from .dictionary import Dictionary

STATISTICS = ("first", "last", "min", "max", "mean", "slope", "tir", "n")


def window_tag(start_h: int, end_h: int) -> str:
    """Suffix naming a window, e.g. ``0_24`` or ``m24_0`` (``m`` = minus)."""
    fmt = lambda h: f"m{-h}" if h < 0 else str(h)  # noqa: E731
    return f"{fmt(start_h)}_{fmt(end_h)}"


def summarise_window(
    ts: pl.DataFrame,
    dictionary: Dictionary,
    start_h: int,
    end_h: int,
    statistics: tuple[str, ...] = STATISTICS,
) -> pl.DataFrame:
    """Summaries of every hourly variable over ``start_h <= hour <= end_h``, one row per stay.

    ``tir`` is the share of measured hours within the variable's normal range (only for
    variables with ``normal`` in the dictionary); ``slope`` is the least-squares slope per
    hour (null with fewer than two measurements); ``n`` the number of measured hours.
    """
    tag = window_tag(start_h, end_h)
    w = ts.lazy().filter((pl.col("hour") >= start_h) & (pl.col("hour") <= end_h))
    normals = {v.name: v.normal for v in dictionary.hourly.values() if v.normal}
    lo = pl.col("variable").replace_strict({k: v[0] for k, v in normals.items()}, default=None, return_dtype=pl.Float64)
    hi = pl.col("variable").replace_strict({k: v[1] for k, v in normals.items()}, default=None, return_dtype=pl.Float64)
    w = w.with_columns(((pl.col("value") >= lo) & (pl.col("value") <= hi)).cast(pl.Float64).alias("_in"))
    h = pl.col("hour").cast(pl.Float64)
    v = pl.col("value")
    aggs = {
        "first": v.sort_by("hour").first(),
        "last": v.sort_by("hour").last(),
        "min": v.min(),
        "max": v.max(),
        "mean": v.mean(),
        "slope": pl.when(pl.len() >= 2)
        .then(((h - h.mean()) * (v - v.mean())).sum() / ((h - h.mean()) ** 2).sum())
        .otherwise(None),
        "tir": pl.col("_in").mean(),
        "n": pl.len().cast(pl.Float64),
    }
    long = (
        w.group_by("stay_id", "variable")
        .agg(**{s: aggs[s] for s in statistics})
        .unpivot(index=["stay_id", "variable"], variable_name="stat", value_name="x")
        .filter(~((pl.col("stat") == "tir") & ~pl.col("variable").is_in(list(normals))))
        .with_columns((pl.col("variable") + "__" + pl.col("stat") + f"_{tag}").alias("feature"))
        .collect()
    )
    wide = long.pivot(on="feature", index="stay_id", values="x", aggregate_function=None)
    cols = sorted(c for c in wide.columns if c != "stay_id")
    return wide.select(["stay_id", *cols])


def stay_features(
    cohort: pl.DataFrame,
    ts: pl.DataFrame,
    dictionary: Dictionary,
    windows: list[tuple[int, int]],
    statistics: tuple[str, ...] = STATISTICS,
) -> pl.DataFrame:
    """Static covariates plus window summaries, one row per stay of the cohort.

    Parameters
    ----------
    windows : list of (start_h, end_h)
        Windows summarised, e.g. ``[(-24, 0), (0, 24)]``; the largest ``end_h`` is the
        prediction horizon and no later hour is read.
    """
    static_cols = [c for c in cohort.columns if c in dictionary.static]
    out = cohort.select(["stay_id", *static_cols])
    for start_h, end_h in windows:
        summ = summarise_window(ts, dictionary, start_h, end_h, statistics)
        out = out.join(summ, on="stay_id", how="left")
    return out.sort("stay_id")


# ----------------------------------------------------------------------------- choosing features
def resolve_features(spec, available: list[str], selected_path: str | Path | None = None, task: str = "outcome") -> list[str]:
    """Columns to use given the config value ``features``.

    ``spec`` is ``"all"``, ``"selected"`` (read ``selected_path``: a JSON mapping
    ``{"outcome": [...], "treatment": [...]}`` written by variable selection; falls back to
    all when absent) or an explicit list (unknown names are an error).
    """
    if spec == "all" or spec is None:
        return list(available)
    if spec == "selected":
        if selected_path is not None and Path(selected_path).exists():
            chosen = json.loads(Path(selected_path).read_text())[task]
            return [c for c in chosen if c in available] or list(available)
        return list(available)
    missing = [c for c in spec if c not in available]
    if missing:
        from .errors import ConfigError

        raise ConfigError("config", "features", f"unknown feature '{missing[0]}'; expected a column of stay_features.parquet")
    return list(spec)


def model_frame(features: pl.DataFrame, columns: list[str], dictionary: Dictionary) -> pd.DataFrame:
    """A pandas frame for scikit-learn: numeric as float, categorical as object (NaN for missing)."""
    df = features.select(["stay_id", *columns]).to_pandas()
    df = df.set_index("stay_id")
    for c in columns:
        if c in dictionary.static and dictionary[c].type == "categorical":
            df[c] = df[c].astype(object).where(df[c].notna(), np.nan)
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def categorical_columns(columns: list[str], dictionary: Dictionary) -> list[str]:
    return [c for c in columns if c in dictionary.static and dictionary[c].type == "categorical"]

