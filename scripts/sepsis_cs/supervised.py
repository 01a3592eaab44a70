"""Supervised risk models: nested patient-level cross-validation, external predictions, clusters.

* :func:`nested_cv` -- outer ``StratifiedGroupKFold`` on ``patient_id`` gives out-of-fold
  predictions; inside each outer training part a grid search (again grouped by patient)
  tunes the model; the preprocessing (:func:`sepsis_cs.preprocess.make_preprocessor`) sits in
  the same ``Pipeline`` so it is refitted on every training part.  Nothing of an outer test
  fold is ever seen while fitting or tuning.
* :func:`grouped_permutation_importance` -- AUROC drop when all summaries of one variable
  are permuted together in the outer test fold.
* :func:`load_predictions` -- reads and checks an external prediction file.
* :func:`evaluate_scores`, :func:`per_group_metrics`, :func:`confront_clusters` -- metrics
  per model, per subgroup (CS group, database, cluster), clusters vs benefit classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline

from . import metrics as M
from .errors import ConfigError, UserInputError
from .preprocess import make_preprocessor

#: internal models: wildcard name -> human label
MODELS = {
    "logistic": "Penalised logistic regression",
    "random_forest": "Random forest",
    "hist_gb": "Histogram gradient boosting",
}


def make_model(name: str, numeric: list[str], categorical: list[str], seed: int, n_jobs: int = 1) -> Pipeline:
    """Unfitted ``Pipeline(preprocess, estimator)``; grid keys address ``model__<param>``."""
    if name == "logistic":
        est = LogisticRegression(C=0.1, l1_ratio=0.0, max_iter=2000, random_state=seed)
        pre = make_preprocessor(numeric, categorical, scale=True, indicators=True)
    elif name == "random_forest":
        est = RandomForestClassifier(n_estimators=200, min_samples_leaf=10, max_features="sqrt", n_jobs=n_jobs, random_state=seed)
        pre = make_preprocessor(numeric, categorical, scale=False, indicators=True)
    elif name == "hist_gb":
        est = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=150, max_depth=3, early_stopping=False, random_state=seed)
        pre = make_preprocessor(numeric, categorical, scale=False, indicators=False)
    else:
        raise ConfigError("config", "supervised.models", f"unknown model '{name}'; expected one of {', '.join(MODELS)}")
    return Pipeline([("pre", pre), ("model", est)])


def _grid(grid: dict) -> dict:
    return {f"model__{k}": list(v) for k, v in (grid or {}).items()}


def outer_folds(y, groups, n_folds: int, seed: int) -> np.ndarray:
    """Fold number (0..n_folds-1) of every stay; all stays of a patient share one fold."""
    fold = np.full(len(y), -1, dtype=int)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
        fold[test] = k
    return fold


def nested_cv(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    numeric: list[str],
    categorical: list[str],
    grid: dict,
    n_outer: int,
    n_inner: int,
    seed: int,
    n_jobs: int = 1,
    scoring: str = "roc_auc",
    importance_repeats: int = 0,
    feature_groups: dict[str, list[str]] | None = None,
    fold_columns: dict[int, list[str]] | None = None,
    fold: np.ndarray | None = None,
):
    """Out-of-fold predictions of ``model`` with tuning nested inside each outer training part.

    ``fold_columns`` (from :func:`fold_selection`) restricts the model of outer fold ``k`` to the
    columns selected on that fold's training part; ``fold`` overrides the outer folds (it must be
    the assignment the selection used).

    Returns
    -------
    oof : pd.DataFrame  ``stay_id, y, score, fold`` (index order of ``X``)
    tuned : list of dict  chosen hyper-parameters and inner score per outer fold
    importance : pd.DataFrame or None  grouped permutation importance per outer fold
    """
    y = np.asarray(y).astype(int)
    groups = np.asarray(groups)
    fold = outer_folds(y, groups, n_outer, seed) if fold is None else np.asarray(fold)
    score = np.full(len(y), np.nan)
    tuned, imps = [], []
    for k in range(n_outer):
        tr, te = np.where(fold != k)[0], np.where(fold == k)[0]
        num_k, cat_k = numeric, categorical
        if fold_columns is not None:
            keep = set(fold_columns[k])
            num_k, cat_k = [c for c in numeric if c in keep], [c for c in categorical if c in keep]
        pipe = make_model(model, num_k, cat_k, seed, n_jobs)
        g = _grid(grid)
        if g and any(len(v) > 1 for v in g.values()):
            inner = StratifiedGroupKFold(n_splits=n_inner, shuffle=True, random_state=seed + 1 + k)
            search = GridSearchCV(pipe, g, scoring=scoring, cv=inner, n_jobs=1, refit=True, error_score="raise")
            search.fit(X.iloc[tr], y[tr], groups=groups[tr])
            fitted = search.best_estimator_
            tuned.append({"fold": k, **{p.removeprefix("model__"): v for p, v in search.best_params_.items()}, "inner_score": float(search.best_score_)})
        else:
            fitted = pipe.set_params(**{p: v[0] for p, v in g.items()}).fit(X.iloc[tr], y[tr])
            tuned.append({"fold": k, **{p.removeprefix("model__"): v[0] for p, v in g.items()}, "inner_score": float("nan")})
        score[te] = fitted.predict_proba(X.iloc[te])[:, 1]
        if importance_repeats and feature_groups:
            groups_k = feature_groups
            if fold_columns is not None:
                groups_k = {v: [c for c in cs if c in keep] for v, cs in feature_groups.items() if any(c in keep for c in cs)}
            imp = grouped_permutation_importance(fitted, X.iloc[te], y[te], groups_k, importance_repeats, seed + 100 + k)
            imp["fold"] = k
            imps.append(imp)
    oof = pd.DataFrame({"stay_id": X.index.astype(str), "y": y, "score": score, "fold": fold})
    importance = pd.concat(imps, ignore_index=True) if imps else None
    return oof, tuned, importance


def feature_groups(columns: list[str]) -> dict[str, list[str]]:
    """Columns grouped by source variable (``lactate__max_0_24`` -> ``lactate``)."""
    out: dict[str, list[str]] = {}
    for c in columns:
        out.setdefault(c.split("__")[0], []).append(c)
    return out


def grouped_permutation_importance(fitted, X: pd.DataFrame, y, groups: dict[str, list[str]], n_repeats: int, seed: int) -> pd.DataFrame:
    """Drop of AUROC when the columns of one variable are permuted jointly (same row order)."""
    rng = np.random.default_rng(seed)
    base = M.auroc(y, fitted.predict_proba(X)[:, 1])
    rows = []
    for name, cols in sorted(groups.items()):
        drops = []
        for _ in range(n_repeats):
            Xp = X.copy()
            perm = rng.permutation(len(X))
            Xp[cols] = X[cols].to_numpy()[perm]
            drops.append(base - M.auroc(y, fitted.predict_proba(Xp)[:, 1]))
        rows.append({"variable": name, "importance": float(np.mean(drops))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- external predictions
def load_predictions(path: str | Path, cohort_ids, name: str | None = None, column: str = "score") -> tuple[pd.DataFrame, dict]:
    """Read and check an external prediction file (CSV or Parquet: ``stay_id, score`` [, ``name``]).

    ``score`` must be a predicted probability in [0, 1] (calibration and Brier need one; a
    points score such as the APACHE IV score must be converted to its predicted mortality
    first).  Duplicated ``stay_id`` or a missing / non-numeric ``score`` is an error.  Stays
    absent from the cohort are dropped and counted.

    Returns ``(frame stay_id, score, name), counts`` with counts ``n_file, n_not_in_cohort,
    n_matched``.
    """
    path = Path(path)
    if not path.exists():
        raise UserInputError(path, None, "external prediction file does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pl.read_parquet(path)
        else:
            df = pl.read_csv(path, infer_schema_length=10000, schema_overrides={"stay_id": pl.String})
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise UserInputError(path, None, f"expected a readable CSV or Parquet prediction file ({type(exc).__name__})") from None
    for col in ("stay_id", column):
        if col not in df.columns:
            raise UserInputError(path, col, f"missing column; expected columns stay_id, {column} [, name]")
    df = df.with_columns(pl.col("stay_id").cast(pl.String))
    try:
        s = df[column].cast(pl.Float64, strict=True)
    except Exception:  # noqa: BLE001
        raise UserInputError(path, column, "expected numeric predicted probabilities in [0, 1]") from None
    if s.null_count() or s.is_nan().any():
        raise UserInputError(path, column, f"{s.null_count() + int(s.is_nan().sum())} missing values; expected a probability for every listed stay")
    if (s < 0).any() or (s > 1).any():
        raise UserInputError(path, column, f"values outside [0, 1] (range {s.min():.3g}..{s.max():.3g}); expected predicted probabilities, convert scores first")
    if df["stay_id"].null_count():
        raise UserInputError(path, "stay_id", "missing stay identifiers")
    dup = df["stay_id"].is_duplicated().sum()
    if dup:
        raise UserInputError(path, "stay_id", f"{dup} rows with a duplicated stay_id; expected one prediction per stay")
    if name is None:
        name = str(df["name"][0]) if "name" in df.columns and len(df) else path.stem
    ids = set(map(str, cohort_ids))
    inside = df["stay_id"].is_in(list(ids))
    counts = {"n_file": df.height, "n_not_in_cohort": int((~inside).sum()), "n_matched": int(inside.sum())}
    if counts["n_matched"] == 0:
        raise UserInputError(path, "stay_id", "no stay_id matches the cohort; expected predictions for the cohort's stays")
    out = pd.DataFrame({"stay_id": df["stay_id"].to_numpy()[inside.to_numpy()], "score": s.to_numpy()[inside.to_numpy()]})
    out["name"] = safe_name(name)
    return out, counts


def is_empty(path: str | Path) -> bool:
    """True for a prediction file without rows (e.g. no APACHE IV result for any cohort stay)."""
    path = Path(path)
    if path.stat().st_size == 0:
        return True
    if path.suffix.lower() in (".parquet", ".pq"):
        return pl.scan_parquet(path).select(pl.len()).collect().item() == 0
    return len(path.read_text(encoding="utf-8", errors="replace").strip().splitlines()) <= 1


def safe_name(name: str) -> str:
    """A model name usable in summary keys: lower case, letters/digits/underscore."""
    import re

    return re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_") or "external"


# ----------------------------------------------------------------------------- evaluation
def evaluate_scores(y, p, groups, n_boot: int, seed: int, fold=None) -> dict:
    """Flat dict ``<metric>, <metric>_lo, <metric>_hi`` with patient-level bootstrap CIs.

    ``fold`` (out-of-fold predictions of an internal model): AUROC and AUPRC are means of the per-fold
    values, resampled within folds, every interval Nadeau-Bengio corrected
    (:func:`sepsis_cs.metrics.bootstrap_metrics`); ``auroc_pooled`` is
    the AUROC of the pooled out-of-fold predictions, kept for comparison (biased low under a null outcome)."""
    res = M.bootstrap_metrics(y, p, groups, n_boot, seed, fold=fold)
    out = {"n": int(len(y)), "events": int(np.sum(y))}
    for k, (e, lo, hi) in res.items():
        out[k], out[f"{k}_lo"], out[f"{k}_hi"] = e, lo, hi
    out["auroc_pooled"] = M.auroc(y, p) if fold is not None else out["auroc"]
    out["auroc_method"] = auroc_method(fold)
    return out


def auroc_method(fold) -> str:
    """How the AUROC and its interval were computed (a column of the metrics table)."""
    if fold is None or len(np.unique(fold)) < 2:
        return "pooled; patient bootstrap"
    return f"mean of {len(np.unique(fold))} per-fold AUROCs; patient bootstrap within folds, Nadeau-Bengio corrected"


def fold_column(model: str) -> str:
    """Column of :func:`score_frame` holding the outer fold of an internal model's predictions."""
    return f"fold__{model}"


def per_group_metrics(frame: pd.DataFrame, by: str, models: list[str], n_boot: int, seed: int, min_cell_count: int) -> pd.DataFrame:
    """AUROC (CI), calibration intercept and slope, mean risk and observed rate per subgroup and model.

    ``frame`` has ``stay_id, patient_id, y, <by>``, one score column per model and, for internal
    models, their outer fold (:func:`fold_column`: the AUROC is then the mean of per-fold values).
    Subgroups with fewer than ``min_cell_count`` events or non-events get counts suppressed and no metric.
    """
    rows = []
    for level, sub in frame.groupby(by, sort=True, dropna=False):
        for m in models:
            s = sub.dropna(subset=[m])
            n, ev = len(s), int(s["y"].sum())
            row = {by: str(level), "model": m, "n": n, "events": ev}
            small = ev < min_cell_count or (n - ev) < min_cell_count
            if small:
                row.update({"n": n if n >= min_cell_count else None, "events": None})
            else:
                fold = s[fold_column(m)].to_numpy() if fold_column(m) in s else None
                r = M.bootstrap_metrics(s["y"].to_numpy(), s[m].to_numpy(), s["patient_id"].to_numpy(), n_boot, seed, {"auroc": M.auroc}, fold=fold)
                ci, cs = M.calibration_intercept_slope(s["y"].to_numpy(), s[m].to_numpy())
                row.update(
                    {
                        "auroc": r["auroc"][0],
                        "auroc_lo": r["auroc"][1],
                        "auroc_hi": r["auroc"][2],
                        "calibration_intercept": ci,
                        "calibration_slope": cs,
                        "mean_predicted": float(s[m].mean()),
                        "observed_rate": float(s["y"].mean()),
                    }
                )
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- clusters
def cluster_defining_variables(features: pd.DataFrame, labels: np.ndarray, groups: dict[str, list[str]]) -> pd.DataFrame:
    """How strongly each variable separates the clusters: max |standardised mean difference|
    (cluster vs rest) over its summaries and over clusters.  Categorical columns are ignored."""
    labels = np.asarray(labels).astype(str)
    rows = []
    for var, cols in sorted(groups.items()):
        best = 0.0
        for c in cols:
            x = pd.to_numeric(features[c], errors="coerce").to_numpy(float) if c in features else None
            if x is None or np.all(np.isnan(x)):
                continue
            sd = np.nanstd(x)
            if not np.isfinite(sd) or sd == 0:
                continue
            for lev in np.unique(labels):
                m = labels == lev
                if m.all() or not m.any():
                    continue
                d = abs(np.nanmean(x[m]) - np.nanmean(x[~m])) / sd
                if np.isfinite(d):
                    best = max(best, float(d))
        rows.append({"variable": var, "cluster_separation": best})
    return pd.DataFrame(rows)


def compare_importance(importance: pd.DataFrame, separation: pd.DataFrame, top_k: int) -> dict:
    """Overlap of the top-``top_k`` variables by model importance and by cluster separation."""
    from scipy.stats import spearmanr

    m = importance.merge(separation, on="variable", how="inner")
    if m.empty:
        return {"top_overlap": float("nan"), "rank_spearman": float("nan")}
    top_i = set(m.nlargest(top_k, "importance")["variable"])
    top_s = set(m.nlargest(top_k, "cluster_separation")["variable"])
    rho = spearmanr(m["importance"], m["cluster_separation"])[0] if len(m) > 2 else float("nan")
    return {"top_overlap": len(top_i & top_s) / max(1, len(top_i | top_s)), "rank_spearman": float(rho), "top_importance": sorted(top_i), "top_cluster": sorted(top_s)}


def cluster_vs_classes(clusters, classes) -> dict:
    """Agreement of cluster labels with benefit classes: ARI and NMI."""
    a = np.asarray(clusters).astype(str)
    b = np.asarray(classes).astype(str)
    return {"ari": float(adjusted_rand_score(a, b)), "nmi": float(normalized_mutual_info_score(a, b))}


def distribution_by_cluster(frame: pd.DataFrame, value_cols: list[str], min_cell_count: int) -> pd.DataFrame:
    """Quartiles of each value column per cluster (clusters under ``min_cell_count`` stays suppressed)."""
    rows = []
    for lev, sub in frame.groupby("cluster", sort=True):
        for c in value_cols:
            v = sub[c].dropna().to_numpy(float)
            if len(v) < min_cell_count:
                rows.append({"cluster": str(lev), "quantity": c, "n": None})
                continue
            q = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
            rows.append({"cluster": str(lev), "quantity": c, "n": len(v), "mean": float(v.mean()), "p10": q[0], "p25": q[1], "median": q[2], "p75": q[3], "p90": q[4]})
    return pd.DataFrame(rows)



# ----------------------------------------------------------------------------- landmark risk cohort
def risk_cohort(cohort: pl.DataFrame, last_hour: pl.DataFrame | None, horizon_h: float, landmark: bool = True) -> tuple[pl.DataFrame, dict]:
    """Stays at risk at the prediction horizon (landmark): alive and still in the ICU at ``horizon_h``.

    A risk model that uses data up to ``horizon_h`` is applied at that hour, so stays that died or
    left the ICU before it are not its population (their short, truncated records would also
    betray the outcome).  Sources, in order: the contract's event-time columns ``death_h`` and
    ``icu_discharge_h`` when the cohort has them; otherwise the last hour with any hourly record
    (``last_hour``: ``stay_id, last_hour``), capped at the last hour the time series covers.
    ``landmark=False`` keeps every stay.

    Returns ``(stay_id, at_risk, reason)`` for every cohort stay and the counts
    ``n_stays, n_risk_cohort, n_excluded_died, n_excluded_left_icu, n_excluded_no_record, landmark_source``.
    """
    base = cohort.select(pl.col("stay_id").cast(pl.String))
    reason = pl.lit("at_risk")
    if not landmark:
        out = base.with_columns(pl.lit(True).alias("at_risk"), pl.lit("at_risk (landmark off)").alias("reason"))
        return out, {"n_stays": out.height, "n_risk_cohort": out.height, "landmark_source": "none (supervised.landmark: false)"}
    has_death = "death_h" in cohort.columns
    has_icu = "icu_discharge_h" in cohort.columns
    if has_icu:
        cols = [pl.col("stay_id").cast(pl.String), pl.col("icu_discharge_h").cast(pl.Float64).alias("_out")]
        cols.append(pl.col("death_h").cast(pl.Float64).alias("_death") if has_death else pl.lit(None, dtype=pl.Float64).alias("_death"))
        df = cohort.select(cols)
        died = pl.col("_death").is_not_null() & (pl.col("_death") < horizon_h)
        left = pl.col("_out").is_not_null() & (pl.col("_out") < horizon_h)
        reason = pl.when(died).then(pl.lit("died_before_horizon")).when(left).then(pl.lit("left_icu_before_horizon")).otherwise(pl.lit("at_risk"))
        source = "icu_discharge_h" + (" and death_h" if has_death else "") + " of the cohort"
    else:
        if last_hour is None:
            raise ValueError("risk_cohort needs the last recorded hour of each stay when the cohort has no icu_discharge_h")
        covered = float(last_hour["last_hour"].max()) if last_hour.height else float(horizon_h)
        at = min(float(horizon_h), covered)
        df = base.join(last_hour.select(pl.col("stay_id").cast(pl.String), pl.col("last_hour").cast(pl.Float64)), on="stay_id", how="left")
        reason = (
            pl.when(pl.col("last_hour").is_null()).then(pl.lit("no_hourly_record"))
            .when(pl.col("last_hour") < at).then(pl.lit("left_icu_or_died_before_horizon"))
            .otherwise(pl.lit("at_risk"))
        )
        source = f"last hourly record at or after hour {at:g} (no icu_discharge_h in the cohort)"
    out = df.select("stay_id", reason.alias("reason")).with_columns((pl.col("reason") == "at_risk").alias("at_risk")).select("stay_id", "at_risk", "reason")
    counts = out["reason"].value_counts()
    n = {r: int(c) for r, c in zip(counts["reason"], counts["count"])}
    info = {
        "n_stays": out.height,
        "n_risk_cohort": n.get("at_risk", 0),
        "n_excluded_died": n.get("died_before_horizon", 0),
        "n_excluded_left_icu": n.get("left_icu_before_horizon", 0) + n.get("left_icu_or_died_before_horizon", 0),
        "n_excluded_no_record": n.get("no_hourly_record", 0),
        "landmark_source": source,
        "landmark_h": float(horizon_h),
    }
    return out.sort("stay_id"), info


def last_recorded_hour(timeseries_path) -> pl.DataFrame:
    """``stay_id, last_hour``: the last hour with any hourly record of each stay (lazy scan)."""
    return pl.scan_parquet(timeseries_path).group_by("stay_id").agg(pl.col("hour").max().alias("last_hour")).collect()


def restrict_to_risk_cohort(cohort: pl.DataFrame, risk: pl.DataFrame) -> pl.DataFrame:
    """The cohort rows of the stays at risk at the horizon."""
    keep = risk.filter(pl.col("at_risk")).select(pl.col("stay_id").cast(pl.String))
    return cohort.with_columns(pl.col("stay_id").cast(pl.String)).join(keep, on="stay_id", how="semi")


# ----------------------------------------------------------------------------- selection inside the outer folds
def fold_selection(X: pd.DataFrame, y, groups, fold: np.ndarray, categorical: list[str], assoc, settings) -> tuple[dict, pd.DataFrame]:
    """Variable selection (the consensus of :func:`sepsis_cs.selection.select_features`) re-run on the
    training part of every outer fold, so that no selection ever sees the fold it is evaluated on.

    Returns ``{fold: [selected columns]}`` and a table ``feature, n_folds_selected, frequency,
    mean_consensus_rank`` (selection frequency across the outer folds)."""
    from dataclasses import replace

    from .selection import select_features

    y = np.asarray(y).astype(int)
    groups = np.asarray(groups)
    chosen, ranks = {}, []
    for k in sorted(np.unique(fold)):
        tr = np.where(fold != k)[0]
        s = replace(settings, seed=int(settings.seed) + 1000 * (int(k) + 1), notes=[])
        table, _ = select_features(X.iloc[tr], y[tr], groups[tr], categorical, assoc, s)
        chosen[int(k)] = table.loc[table["selected"], "feature"].tolist()
        ranks.append(table[["feature", "consensus_rank", "selected"]].assign(fold=int(k)))
    r = pd.concat(ranks, ignore_index=True)
    freq = r.groupby("feature").agg(n_folds_selected=("selected", "sum"), mean_consensus_rank=("consensus_rank", "mean")).reset_index()
    freq["frequency"] = freq["n_folds_selected"] / len(chosen)
    freq = freq.sort_values(["frequency", "mean_consensus_rank", "feature"], ascending=[False, True, True]).reset_index(drop=True)
    return chosen, freq[["feature", "n_folds_selected", "frequency", "mean_consensus_rank"]]


def model_inputs(features: pl.DataFrame, cohort: pl.DataFrame, columns: list[str], dictionary, outcome: str):
    """Design frame, outcome and patient groups of the stays with a known outcome (same order)."""
    from .features import model_frame

    lab = cohort.select("stay_id", "patient_id", pl.col(outcome).alias("_y")).filter(pl.col("_y").is_not_null())
    feats = features.join(lab.select("stay_id"), on="stay_id", how="semi").sort("stay_id")
    lab = lab.join(feats.select("stay_id"), on="stay_id", how="semi").sort("stay_id")
    if lab.height == 0:
        raise UserInputError("cohort.parquet", outcome, "no stay with a known outcome")
    X = model_frame(feats, columns, dictionary)
    return X, lab["_y"].cast(pl.Int64).to_numpy(), lab["patient_id"].cast(pl.String).to_numpy()


# ----------------------------------------------------------------------------- assembling the evaluation
def score_frame(cohort: pl.DataFrame, outcome: str, internal: dict[str, pd.DataFrame], external: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per stay with a known outcome: ``stay_id, patient_id, y, cs_group, database``, a score
    column per model (NaN where an external file has no prediction for the stay) and, for internal
    models with a ``fold`` column (out-of-fold predictions), its outer fold (:func:`fold_column`)."""
    base = cohort.select(
        pl.col("stay_id").cast(pl.String),
        pl.col("patient_id").cast(pl.String),
        pl.col(outcome).alias("y"),
        pl.when(pl.col("cs")).then(pl.lit("CS")).otherwise(pl.lit("no CS")).alias("cs_group"),
        pl.col("database").cast(pl.String),
    ).filter(pl.col("y").is_not_null()).to_pandas()
    frame = base.set_index("stay_id")
    for name, df in {**internal, **external}.items():
        frame[name] = df.set_index(df["stay_id"].astype(str))["score"].reindex(frame.index)
    for name, df in internal.items():
        if "fold" in df:
            frame[fold_column(name)] = df.set_index(df["stay_id"].astype(str))["fold"].reindex(frame.index)
    return frame.reset_index().sort_values("stay_id", kind="stable").reset_index(drop=True)


def evaluation_tables(frame: pd.DataFrame, internal: list[str], external: list[str], n_boot: int, seed: int, min_cell_count: int):
    """(metrics table, per-group table, comparison table, flat summary) of all models."""
    rows, summary = [], {}
    for m in internal + external:
        s = frame.dropna(subset=[m])
        if s["y"].nunique() < 2:
            continue
        fold = s[fold_column(m)].to_numpy() if fold_column(m) in s else None
        r = evaluate_scores(s["y"].to_numpy(), s[m].to_numpy(), s["patient_id"].to_numpy(), n_boot, seed, fold=fold)
        rows.append({"model": m, "kind": "internal" if m in internal else "external", **r})
        for k in ("auroc", "auprc", "brier", "calibration_intercept", "calibration_slope"):
            summary[f"{k}_{m}"] = r[k]
        summary[f"auroc_{m}_lo"], summary[f"auroc_{m}_hi"] = r["auroc_lo"], r["auroc_hi"]
    metrics = pd.DataFrame(rows)
    parts = [per_group_metrics(frame, "cs_group", internal + external, n_boot, seed, min_cell_count).rename(columns={"cs_group": "group"}).assign(by="cs_group")]
    if frame["database"].nunique() > 1:
        parts.append(per_group_metrics(frame, "database", internal + external, n_boot, seed, min_cell_count).rename(columns={"database": "group"}).assign(by="database"))
    by_group = pd.concat(parts, ignore_index=True)
    comp = []
    for e in external:
        for m in internal:
            s = frame.dropna(subset=[m, e])
            if s["y"].nunique() < 2:
                continue
            fold = s[fold_column(m)].to_numpy() if fold_column(m) in s else None
            d, lo, hi = M.paired_auroc_difference(s["y"].to_numpy(), s[m].to_numpy(), s[e].to_numpy(), s["patient_id"].to_numpy(), n_boot, seed, fold=fold)
            a_int, a_ext = ((M.fold_mean(M.auroc, s["y"], s[c], fold) if fold is not None else M.auroc(s["y"], s[c])) for c in (m, e))
            comp.append({"internal": m, "external": e, "n": len(s), "auroc_internal": a_int, "auroc_external": a_ext, "auroc_difference": d, "difference_lo": lo, "difference_hi": hi})
            summary[f"auroc_diff_{m}_vs_{e}"], summary[f"auroc_diff_{m}_vs_{e}_lo"], summary[f"auroc_diff_{m}_vs_{e}_hi"] = d, lo, hi
    cols = ["internal", "external", "n", "auroc_internal", "auroc_external", "auroc_difference", "difference_lo", "difference_hi"]
    return metrics, by_group, pd.DataFrame(comp, columns=cols), summary


def plot_calibration(frame: pd.DataFrame, models: list[str], n_bins: int, title: str):
    from .plotting import PALETTE, figure

    fig, ax = figure(6.0, 5.5)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="perfect")
    hi = 0.0
    for i, m in enumerate(models):
        s = frame.dropna(subset=[m])
        bins, curve = M.calibration_curve(s["y"].to_numpy(), s[m].to_numpy(), n_bins)
        col = PALETTE[i % len(PALETTE)]
        ax.plot(curve["predicted"], curve["observed"], color=col, lw=1.6, label=f"{m} (isotonic)")
        ax.scatter(bins["mean_predicted"], bins["observed"], color=col, s=22, zorder=3)
        hi = max([hi, *bins["mean_predicted"], *bins["observed"]])  # no bin when every prediction is the same (tiny data)
    lim = min(1.0, hi * 1.08 + 0.02)
    ax.set(xlim=(0, lim), ylim=(0, lim), xlabel="predicted risk", ylabel="observed rate", title=title)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_decision_curve(frame: pd.DataFrame, models: list[str], thresholds, title: str):
    from .plotting import PALETTE, figure

    fig, ax = figure(6.5, 4.5)
    y = frame["y"].to_numpy()
    ax.plot(thresholds, M.net_benefit_treat_all(y, thresholds), color="grey", lw=1.2, label="treat all")
    ax.axhline(0, color="black", lw=1, label="treat none")
    for i, m in enumerate(models):
        s = frame.dropna(subset=[m])
        ax.plot(thresholds, M.net_benefit(s["y"].to_numpy(), s[m].to_numpy(), thresholds), color=PALETTE[i % len(PALETTE)], lw=1.6, label=m)
    prev = float(np.mean(y))
    ax.set(ylim=(-0.05 * max(prev, 0.05), prev * 1.1 + 1e-3), xlabel="threshold probability", ylabel="net benefit", title=title)
    ax.legend(fontsize=8)
    return fig


def confront_clusters(
    labels: pd.DataFrame,
    scores: pd.DataFrame,
    models: list[str],
    cate_frames: dict[str, pd.DataFrame],
    importances: dict[str, pd.DataFrame],
    features: pd.DataFrame,
    n_boot: int,
    seed: int,
    min_cell_count: int,
    top_k: int,
):
    """Confront risk models and CS benefit with a clustering.

    ``labels`` has ``stay_id, cluster``; ``scores`` is :func:`score_frame` output; ``features``
    the stay features indexed by ``stay_id``.  Returns (per-cluster model metrics, per-cluster
    distributions of risk and benefit, merged frame for plotting, flat summary).
    """
    lab = labels[["stay_id", "cluster"]].astype({"stay_id": str, "cluster": str})
    frame = scores.merge(lab, on="stay_id", how="inner")
    for learner, c in cate_frames.items():
        c = c.astype({"stay_id": str}).set_index("stay_id")
        frame[f"benefit_{learner}"] = c["benefit"].reindex(frame["stay_id"]).to_numpy()
        frame[f"class_{learner}"] = c["benefit_class"].reindex(frame["stay_id"]).to_numpy()
    per_cluster = per_group_metrics(frame, "cluster", models, n_boot, seed, min_cell_count)
    dist = distribution_by_cluster(frame, [m for m in models] + [f"benefit_{lr}" for lr in cate_frames], min_cell_count)
    summary = {"n_clusters": int(frame["cluster"].nunique()), "n_stays_clustered": len(frame)}
    for learner in cate_frames:
        s = frame.dropna(subset=[f"class_{learner}"])
        s = s[~s[f"class_{learner}"].isin(["outside_overlap", "not_classified"])]
        if s.empty:  # no class declared (heterogeneity not detected): nothing to compare
            summary[f"ari_clusters_benefit_{learner}"] = summary[f"nmi_clusters_benefit_{learner}"] = None
            continue
        agree = cluster_vs_classes(s["cluster"], s[f"class_{learner}"])
        summary[f"ari_clusters_benefit_{learner}"] = agree["ari"]
        summary[f"nmi_clusters_benefit_{learner}"] = agree["nmi"]
    feats = features.reindex(frame["stay_id"])
    groups = feature_groups([c for c in feats.columns])
    sep = cluster_defining_variables(feats, frame["cluster"].to_numpy(), groups)
    for m, imp in importances.items():
        cmp = compare_importance(imp, sep, top_k)
        summary[f"importance_cluster_overlap_{m}"] = cmp["top_overlap"]
        summary[f"importance_cluster_spearman_{m}"] = cmp["rank_spearman"]
    return per_cluster, dist, frame, summary


def plot_cluster_benefit(frame: pd.DataFrame, risk_model: str, learner: str, title: str):
    import seaborn as sns

    from .plotting import PALETTE, figure

    fig, (a1, a2) = figure(11.0, 4.5, ncols=2)
    order = sorted(frame["cluster"].unique())
    sns.boxplot(data=frame, x="cluster", y=risk_model, order=order, ax=a1, color=PALETTE[0], showfliers=False)
    a1.set(xlabel="cluster", ylabel=f"predicted risk ({risk_model}, out-of-fold)", title="Predicted risk")
    sns.boxplot(data=frame, x="cluster", y=f"benefit_{learner}", order=order, ax=a2, color=PALETTE[2], showfliers=False)
    a2.axhline(0, color="black", lw=0.8)
    a2.set(xlabel="cluster", ylabel=f"estimated CS benefit ({learner})", title="Estimated CS benefit")
    fig.suptitle(title)
    return fig
