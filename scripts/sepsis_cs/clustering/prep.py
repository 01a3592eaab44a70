"""Which stay features are clustered and how they are prepared (fitted on the clustered stays only).

The default feature set, ``phenotype``, follows the usual design of sepsis phenotyping studies
(Seymour et al., JAMA 2019): a compact set of static characteristics (age, comorbidities) and one
summary per physiological variable over an early window.  The default window, ``pre_t0``, is the
baseline window of ``stay_features`` (``[stay_features.baseline_start_h, 0]``, e.g. ``m24_0``): it
describes the patient *before* treatment, so that CS-treated and untreated clusters (and their
"specific traits") are not shaped by the drug.  Seymour's 0-6 h or a 0-24 h window (``window: 0_24``)
follows CS start in many stays and describes the early course under treatment; post-time-zero data
are used by the trajectory clustering, which is labelled as such.  Extending the window up to CS
start for the treated stays was not chosen: untreated stays have no CS start, and windows of
different lengths in the two groups would make the groups differ by construction.

Columns missing in more than ``max_missing_share`` of the stays of a population are left out (the
median imputation would otherwise turn them into a point mass that forms its own "cluster").

Preprocessing is fitted on the data of each run (each population, each resample):

* numeric columns that are strictly positive and right-skewed (sample skewness > ``skew_threshold``)
  are log-transformed (labs such as lactate, CRP, creatinine, bilirubin);
* missing values are imputed with the median (numeric) or the mode (binary / categorical);
* numeric columns are standardised; binary columns are kept as 0/1 and categorical ones one-hot
  encoded (0/1), so a comorbidity weighs less than a continuous variable in Euclidean methods (its
  SD is at most 0.5); scaling them to unit variance let rare comorbidities drive the partitions.

No missingness indicators are added: clusters should describe physiology, not charting habits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl

from ..errors import ConfigError, UserInputError
from ..features import resolve_features

DEFAULT_STATIC = (
    "age",
    "chronic_kidney_disease",
    "liver_disease",
    "diabetes",
    "copd",
    "heart_failure",
    "immunosuppression",
    "malignancy",
)
DEFAULT_HOURLY = (
    "lactate",
    "map",
    "crp",
    "wbc",
    "creatinine",
    "bilirubin",
    "platelets",
    "pf_ratio",
    "temperature",
    "heart_rate",
    "resp_rate",
)


def pre_t0_tag(available: list[str]) -> str:
    """Window tag of the pre-time-zero summaries of ``stay_features`` (e.g. ``m24_0``)."""
    tags = sorted({c.split("__", 1)[1].split("_", 1)[1] for c in available if "__" in c and _is_pre_t0(c)})
    if len(tags) != 1:
        raise ConfigError("config", "cluster.phenotype.window", f"expected one pre-time-zero window in stay_features.parquet, found {tags or 'none'}")
    return tags[0]


def _is_pre_t0(column: str) -> bool:
    """``lactate__mean_m24_0`` -> True (window ends at time zero and starts before it)."""
    stat = column.split("__", 1)[1] if "__" in column else ""
    parts = stat.split("_")
    return len(parts) >= 3 and parts[-1] == "0" and parts[-2].startswith("m")


def phenotype_columns(phenotype_cfg: dict, available: list[str]) -> list[str]:
    """Columns of the ``phenotype`` feature set present in ``available`` (absent ones are skipped)."""
    static = phenotype_cfg.get("static", list(DEFAULT_STATIC))
    hourly = phenotype_cfg.get("hourly", list(DEFAULT_HOURLY))
    stat = phenotype_cfg.get("statistic", "mean")
    window = phenotype_cfg.get("window", "pre_t0")
    if window == "pre_t0":
        window = pre_t0_tag(available)
    cols = [c for c in static if c in available] + [f"{v}__{stat}_{window}" for v in hourly if f"{v}__{stat}_{window}" in available]
    if len(cols) < 2:
        raise ConfigError("config", "cluster.phenotype", "fewer than 2 phenotype columns exist in stay_features.parquet")
    return cols


def cluster_columns(cluster_cfg: dict, available: list[str], selected_path=None) -> list[str]:
    """Resolve ``cluster.features``: phenotype | baseline | selected | all | explicit list."""
    spec = cluster_cfg.get("features", "phenotype")
    if spec == "phenotype":
        return phenotype_columns(cluster_cfg.get("phenotype", {}), available)
    if spec == "baseline":
        # static covariates and pre-time-zero summaries only (no post-treatment information)
        return [c for c in available if "__" not in c or _is_pre_t0(c)]
    return resolve_features(spec, available, selected_path, task="outcome")


@dataclass
class Prepared:
    """Design matrices of one run."""

    X: np.ndarray  # standardised, all columns (categoricals one-hot)
    names: list[str]  # column names of X
    continuous: np.ndarray  # indices of X columns that are continuous (not 0/1)
    G: np.ndarray  # imputed, logged, unscaled matrix for Gower (categoricals as integer codes)
    g_kind: list[str] = field(default_factory=list)  # "num" | "cat" per column of G


class ClusterPreprocessor:
    """Log-transform skewed positive columns, impute, scale, one-hot encode; fitted per run."""

    def __init__(self, numeric: list[str], categorical: list[str], skew_threshold: float = 1.0):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.skew_threshold = float(skew_threshold)

    def fit(self, df: pd.DataFrame) -> "ClusterPreprocessor":
        num = df[self.numeric].astype(float)
        self.log_cols_ = []
        for c in self.numeric:
            x = num[c].dropna()
            if len(x) > 2 and x.min() > 0 and x.nunique() > 2 and float(x.skew()) > self.skew_threshold:
                self.log_cols_.append(c)
        num = self._log(num)
        self.median_ = num.median().fillna(0.0)
        filled = num.fillna(self.median_)
        self.mean_ = filled.mean()
        sd = filled.std(ddof=0)
        self.sd_ = sd.where(sd > 0, 1.0)
        self.binary_ = [c for c in self.numeric if set(np.unique(filled[c])) <= {0.0, 1.0}]
        # robust range for Gower (1st-99th percentile) so that one outlier does not squash a column
        lo, hi = filled.quantile(0.01), filled.quantile(0.99)
        self.g_lo_, self.g_range_ = lo, (hi - lo).where((hi - lo) > 0, 1.0)
        self.levels_ = {}
        self.mode_ = {}
        for c in self.categorical:
            s = df[c].astype(object).where(df[c].notna(), None).dropna().astype(str)
            self.levels_[c] = sorted(s.unique().tolist())
            self.mode_[c] = s.mode().sort_values().iloc[0] if len(s) else "missing"
        return self

    def _log(self, num: pd.DataFrame) -> pd.DataFrame:
        num = num.copy()
        for c in self.log_cols_:
            num[c] = np.log(num[c].clip(lower=1e-6))
        return num

    def transform(self, df: pd.DataFrame) -> Prepared:
        num = self._log(df[self.numeric].astype(float)).fillna(self.median_)
        Z = ((num - self.mean_) / self.sd_).to_numpy(float)
        for j, c in enumerate(self.numeric):  # binary columns stay 0/1 (weight = their SD <= 0.5)
            if c in self.binary_:
                Z[:, j] = num[c].to_numpy(float)
        names = list(self.numeric)
        cont = [i for i, c in enumerate(self.numeric) if c not in self.binary_]
        G_parts = [((num - self.g_lo_) / self.g_range_).clip(-0.5, 1.5).to_numpy(float)]
        kinds = ["cat" if c in self.binary_ else "num" for c in self.numeric]
        blocks = [Z]
        for c in self.categorical:
            s = df[c].astype(object).where(df[c].notna(), None).fillna(self.mode_[c]).astype(str)
            onehot = np.stack([(s == lev).to_numpy(float) for lev in self.levels_[c]], axis=1)
            blocks.append(onehot)
            names += [f"{c}={lev}" for lev in self.levels_[c]]
            codes = np.array([self.levels_[c].index(v) if v in self.levels_[c] else -1 for v in s], dtype=float)
            G_parts.append(codes[:, None])
            kinds.append("cat")
        return Prepared(X=np.hstack(blocks), names=names, continuous=np.array(cont, dtype=int), G=np.hstack(G_parts), g_kind=kinds)


def prepare(df: pd.DataFrame, categorical: list[str], skew_threshold: float = 1.0) -> Prepared:
    """Fit the preprocessor on ``df`` and transform it (one clustering run)."""
    numeric = [c for c in df.columns if c not in categorical]
    return ClusterPreprocessor(numeric, categorical, skew_threshold).fit(df).transform(df)


def gower(G: np.ndarray, kinds: list[str], dtype=np.float32) -> np.ndarray:
    """Gower distance matrix: mean over columns of |x_i - x_j| (numeric, range-scaled) or mismatch (categorical)."""
    n = G.shape[0]
    D = np.zeros((n, n), dtype=dtype)
    for j, kind in enumerate(kinds):
        col = G[:, j].astype(dtype)
        if kind == "num":
            D += np.minimum(np.abs(col[:, None] - col[None, :]), 1.0)
        else:
            D += (col[:, None] != col[None, :]).astype(dtype)
    D /= len(kinds)
    return D


def gower_cross(A: np.ndarray, B: np.ndarray, kinds: list[str], dtype=np.float32) -> np.ndarray:
    """Gower distances between the rows of A and the rows of B (len(A) x len(B)); same arithmetic as :func:`gower`."""
    D = np.zeros((A.shape[0], B.shape[0]), dtype=dtype)
    for j, kind in enumerate(kinds):
        a, b = A[:, j].astype(dtype), B[:, j].astype(dtype)
        if kind == "num":
            D += np.minimum(np.abs(a[:, None] - b[None, :]), 1.0)
        else:
            D += (a[:, None] != b[None, :]).astype(dtype)
    D /= len(kinds)
    return D


def population_mask(cohort: pl.DataFrame, population: str) -> pl.Series:
    """Boolean mask of the stays of a population (cs | no_cs | pooled)."""
    if population == "pooled":
        return pl.Series([True] * cohort.height)
    if population == "cs":
        return cohort["cs"].cast(pl.Boolean)
    if population == "no_cs":
        return ~cohort["cs"].cast(pl.Boolean)
    raise UserInputError("config", "population", f"expected cs | no_cs | pooled, got {population!r}")


def load_population(features: pl.DataFrame, cohort: pl.DataFrame, dictionary, cluster_cfg: dict, population: str, selected_path=None):
    """Clustering frame of one population.

    Returns ``(df, categorical, cohort_subset)``: ``df`` is a pandas frame indexed by stay_id with
    the clustering columns (numeric as float, categoricals as object), rows sorted by stay_id and
    aligned with ``cohort_subset``.  Columns missing in more than ``cluster_cfg['max_missing_share']``
    of all the cohort's stays (decided on all stays, so every population clusters the same columns)
    are left out and listed in ``df.attrs['dropped_missing']``.
    """
    from ..features import categorical_columns, model_frame

    for name, frame in (("stay_features.parquet", features), ("cohort.parquet", cohort)):
        if "stay_id" not in frame.columns:
            raise UserInputError(name, "stay_id", "column is missing")
    if "cs" not in cohort.columns:
        raise UserInputError("cohort.parquet", "cs", "column is missing")
    available = [c for c in features.columns if c != "stay_id"]
    cols = cluster_columns(cluster_cfg, available, selected_path)
    limit = float(cluster_cfg.get("max_missing_share", 1.0))
    share = features.select(pl.col(cols).is_null().mean()).row(0, named=True) if features.height else {}
    dropped = [c for c in cols if share.get(c, 0.0) > limit]
    cols = [c for c in cols if c not in dropped]
    if len(cols) < 2:
        raise UserInputError("stay_features.parquet", dropped[0] if dropped else "stay_id", f"fewer than 2 clustering columns are observed in at least {1 - limit:.0%} of the stays (cluster.max_missing_share)")
    cohort = cohort.sort("stay_id")
    keep = cohort.filter(population_mask(cohort, population))
    feats = features.join(keep.select("stay_id"), on="stay_id", how="semi").sort("stay_id")
    if feats.height != keep.height:
        raise UserInputError("stay_features.parquet", "stay_id", "expected one row per stay of cohort.parquet")
    if feats.height < 2:
        raise UserInputError("cohort.parquet", "cs", f"population '{population}' has {feats.height} stays; too few to cluster")
    df = model_frame(feats, cols, dictionary)
    df.attrs["dropped_missing"] = dropped
    return df, categorical_columns(cols, dictionary), keep
