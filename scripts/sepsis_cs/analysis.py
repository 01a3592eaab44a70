"""Shared helpers of the understanding and general-analysis phases.

Which ``stay_features`` columns are baseline (static covariates and summaries of the
pre-time-zero window), how a feature is labelled in tables and figures, how the cohort's
treatment, outcome and patient columns join the features, and patient-level folds.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import polars as pl

from .dictionary import Dictionary
from .errors import UserInputError

#: window tags of the pre-time-zero (baseline) window, e.g. ``m24_0``
_BASELINE_TAG = re.compile(r"__[a-z]+_m\d+_0$")
_FEATURE = re.compile(r"^(?P<var>.+?)__(?P<stat>[a-z]+)_(?P<tag>m?\d+_m?\d+)$")
STAT_LABELS = {
    "first": "first",
    "last": "last",
    "min": "min",
    "max": "max",
    "mean": "mean",
    "slope": "slope/h",
    "tir": "time in normal range",
    "n": "hours measured",
}


def parse_feature(name: str) -> tuple[str, str | None, str | None]:
    """``lactate__max_0_24`` -> ``("lactate", "max", "0_24")``; static -> ``(name, None, None)``."""
    m = _FEATURE.match(name)
    if not m:
        return name, None, None
    return m["var"], m["stat"], m["tag"]


def is_baseline(name: str, dictionary: Dictionary) -> bool:
    """Static covariates (values at or before time zero) and pre-time-zero window summaries."""
    return (name in dictionary.static) or bool(_BASELINE_TAG.search(name))


def baseline_columns(columns: list[str], dictionary: Dictionary) -> list[str]:
    return [c for c in columns if is_baseline(c, dictionary)]


def window_label(tag: str) -> str:
    a, b = tag.split("_")
    f = lambda s: f"-{s[1:]}" if s.startswith("m") else s  # noqa: E731
    return f"{f(a)} to {f(b)} h"


def feature_label(name: str, dictionary: Dictionary, short: bool = False) -> str:
    """Human-readable label of a stay feature (never carries identifiers)."""
    var, stat, tag = parse_feature(name)
    if stat is None:
        return name if short or name not in dictionary else dictionary[name].label
    base = var if short or var not in dictionary else dictionary[var].label
    return f"{base}, {STAT_LABELS.get(stat, stat)} {window_label(tag)}"


def variable_type(name: str, dictionary: Dictionary) -> str:
    """``numeric``, ``binary`` or ``categorical`` for a stay feature."""
    if name in dictionary.static:
        return dictionary[name].type
    return "numeric"


def design(features: pl.DataFrame, cohort: pl.DataFrame, target: str | None = None) -> pl.DataFrame:
    """Features joined with ``patient_id``, ``cs`` (0/1) and, when given, the target column.

    Raises :class:`UserInputError` when the cohort lacks a column the analysis needs.
    """
    need = ["stay_id", "patient_id", "cs"] + ([target] if target and target != "cs" else [])
    missing = [c for c in need if c not in cohort.columns]
    if missing:
        raise UserInputError("cohort.parquet", missing[0], "required column is missing (see docs/data-contract.md)")
    keep = cohort.select(need).with_columns(pl.col("cs").cast(pl.Int8))
    drop = [c for c in need if c != "stay_id" and c in features.columns]
    return features.drop(drop).join(keep, on="stay_id", how="inner").sort("stay_id")


def usable_columns(df: pd.DataFrame | pl.DataFrame, columns: list[str], min_non_missing: int = 2) -> tuple[list[str], list[str]]:
    """Split columns into usable ones and ones dropped (entirely missing or constant)."""
    keep, dropped = [], []
    for c in columns:
        s = df[c]
        s = s.to_pandas() if isinstance(s, pl.Series) else s
        nn = s.dropna()
        if len(nn) < min_non_missing or nn.nunique() < 2:
            dropped.append(c)
        else:
            keep.append(c)
    return keep, dropped


def patient_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    """Patient-level stratified folds; fewer folds when the minority class is small.

    Returns ``(list of (train_idx, test_idx), n_splits_used)``; ``n_splits_used`` is 0 when
    folds are impossible (fewer than 2 stays in a class or fewer than 2 patients).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    n_groups = len(np.unique(groups))
    k = int(min(n_splits, counts.min() if len(classes) == 2 else 0, n_groups))
    if k < 2:
        return [], 0
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y, groups)), k


def sub_seed(seed: int, *parts: str | int) -> int:
    """A deterministic sub-seed from the global seed and labels (no Python hash randomisation)."""
    import zlib

    key = "/".join(str(p) for p in parts).encode()
    return (int(seed) * 1_000_003 + zlib.crc32(key)) % (2**32)


def profile_variables(columns: list[str], dictionary: Dictionary, baseline_tag: str = "m24_0") -> list[tuple[str, str, str]]:
    """Variables of Table 1 and the distribution figure: ``(column, label, type)``.

    Static covariates present in ``columns`` (dictionary order), then for each hourly
    variable its baseline summary ``<var>__<aggregation>_<baseline_tag>`` (the dictionary's
    aggregation when it is first/last/min/max/mean, otherwise the mean).
    """
    out = []
    for name, v in dictionary.static.items():
        if name in columns:
            out.append((name, v.label, v.type))
    for name, v in dictionary.hourly.items():
        stat = v.aggregation if v.aggregation in ("first", "last", "min", "max", "mean") else "mean"
        col = f"{name}__{stat}_{baseline_tag}"
        if col in columns:
            unit = f" ({v.unit})" if v.unit else ""
            out.append((col, f"{v.label}{unit}, {stat} {window_label(baseline_tag)}", "numeric"))
    return out


def labels_for(columns: list[str], dictionary: Dictionary) -> dict[str, str]:
    return {c: feature_label(c, dictionary) for c in columns}
