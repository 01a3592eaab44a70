"""Transfer learning across databases and from temporal auxiliary information (phase 5).

Across databases (a *source* with many labelled stays, a *target* with few), every strategy
is a function ``fit_<strategy>(context, target_train_rows, seed)`` returning a scorer of target
rows (logits) and an info dict; :func:`learning_curve` evaluates one strategy over target training sizes
x seeds, each seed drawing its own patient-level split of the target into a training pool and a
held-out test set (so the spread over seeds includes the test-set variation), and scores each fit by
inner cross-validation *on the target training data only* (the score the negative-transfer guard
uses; the test set never chooses anything).  Means over seeds carry Nadeau & Bengio's corrected
resampled-t interval (:func:`corrected_ci`), since the repeats share stays.

Strategies (all share one penalised logistic learner so that differences come from the
transfer mechanism, not the model class):

``target_only``   fitted on the target training stays only, ridge strength by inner CV (the reference).
``source_only``   fitted on the source only.
``pooled``        source and target stays stacked.
``augmented``     Daumé's "frustratingly easy" feature augmentation: a shared copy of each
                  feature plus a source-specific and a target-specific copy, and a database
                  indicator; the L2 penalty shrinks the domain-specific parts towards 0.
``reweighted``    pooled, source stays weighted by the density ratio p(target|x)/p(source|x)
                  of a domain classifier (covariate-shift correction), weights clipped.
``finetune``      source-informed prior: target fit penalised towards the source coefficients
                  (offset formulation ``logit = x'w_s + x'd``, ridge on ``d``; strength by
                  inner CV; the intercept moves freely).
``stacking``      a second-level logistic model on the source model's logit and the cross-
                  fitted target model's logit.

The learner is a ridge-penalised logistic regression (:func:`logreg`, L-BFGS with warm starts),
with median imputation and standardisation fitted on training rows only (:class:`Standardiser`,
the numpy equivalent of ``preprocess.make_preprocessor`` without indicators: a learning curve
refits thousands of times, and scikit-learn's per-fit overhead would dominate).

Temporal auxiliary information (:func:`temporal_experiment`): a teacher on the full
trajectory, a student on early data trained on the teacher's cross-fitted soft targets
(generalized distillation, Lopez-Paz et al. 2016), and auxiliary targets predicted from early
data and stacked as extra inputs (cross-fitted), each compared with the early-only model on
repeated patient-level splits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.linear_model import Ridge
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from .errors import UserInputError
from .features import categorical_columns, model_frame, resolve_features

log = logging.getLogger("sepsis_cs")

STRATEGIES = ("target_only", "source_only", "pooled", "augmented", "reweighted", "finetune", "stacking")
#: statistics whose features describe how often something was measured (site shortcuts)
FREQUENCY_STATS = ("n",)


# ============================================================================ data
@dataclass
class Domain:
    """Model inputs of one database: features (pandas, stay index), outcome, patient groups."""

    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray

    def take(self, idx) -> "Domain":
        return Domain(self.X.iloc[idx], self.y[idx], self.groups[idx])

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Settings:
    """Learner and evaluation settings (config section ``transfer``)."""

    C: float = 0.1
    C_grid: tuple[float, ...] = (0.01, 0.1)
    inner_folds: int = 3
    weight_clip: float = 10.0
    domain_C: float = 0.01
    finetune_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    cat_columns: tuple[str, ...] = ()


def shared_columns(spec, target_cols: list[str], source_cols: list[str], selected_path=None) -> list[str]:
    """Model inputs: the config ``features`` choice on the target, restricted to columns the
    source also has (a database may lack a variable)."""
    wanted = resolve_features(spec, [c for c in target_cols if c != "stay_id"], selected_path, "outcome")
    src = set(source_cols)
    cols = [c for c in wanted if c in src]
    if not cols:
        raise UserInputError("stay_features.parquet", None, "source and target share no feature column")
    return cols


def load_domain(features: pl.DataFrame, cohort: pl.DataFrame, columns: list[str], outcome: str, dictionary, path="cohort.parquet") -> Domain:
    """Join features to the outcome and patient id; stays without the outcome are dropped."""
    if outcome not in cohort.columns:
        raise UserInputError(path, outcome, "the configured outcome column")
    lab = cohort.select("stay_id", "patient_id", pl.col(outcome).cast(pl.Float64).alias("_y"))
    df = features.join(lab, on="stay_id", how="inner").filter(pl.col("_y").is_not_null()).sort("stay_id")
    if df.height == 0:
        raise UserInputError(path, outcome, "stays with a non-missing outcome")
    X = model_frame(df, columns, dictionary)
    return Domain(X, df["_y"].to_numpy().astype(int), df["patient_id"].to_numpy())


def drop_empty_columns(*domains: Domain) -> list[str]:
    """Columns that are observed in every domain (an all-missing column cannot transfer)."""
    cols = list(domains[0].X.columns)
    return [c for c in cols if all(d.X[c].notna().any() for d in domains)]


# ============================================================================ splits
def target_split(dom: Domain, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed patient-level, outcome-stratified split of the target into a training pool and a test set."""
    k = max(2, int(round(1.0 / test_share)))
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    pool, test = next(cv.split(np.zeros(len(dom)), dom.y, dom.groups))
    return np.sort(pool), np.sort(test)


def subsample(pool: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, min_per_class: int = 2) -> np.ndarray:
    """``n`` stays from ``pool``, outcome-stratified, at least ``min_per_class`` of each class."""
    if n >= len(pool):
        return np.sort(pool)
    yp = y[pool]
    pos, neg = pool[yp == 1], pool[yp == 0]
    n_pos = int(round(n * len(pos) / len(pool)))
    n_pos = min(max(n_pos, min_per_class), len(pos), n - min(min_per_class, len(neg)))
    n_neg = n - n_pos
    return np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]))


def inner_splits(dom: Domain, k: int, seed: int):
    """Patient-level stratified folds of the target training data (fewer when events are rare)."""
    n_min = int(min(np.bincount(dom.y, minlength=2)))
    k = min(k, n_min, len(np.unique(dom.groups)))
    if k < 2:
        return []
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(dom)), dom.y, dom.groups))


# ============================================================================ learner
def logreg(Z, y, C, weight=None, offset=None, init=None, center=None, intercept0=None, tol=1e-6, max_iter=500):
    """Ridge-penalised logistic regression, minimising
    ``sum_i w_i logloss(y_i, offset_i + b + z_i'beta) + ||beta - center||^2 / (2C)``
    (unpenalised intercept ``b``; ``C`` as in scikit-learn).  ``center`` != 0 is a prior centred on
    other coefficients (fine-tuning); ``init`` warm-starts the solver.  Returns ``(beta, b)``."""
    n, p = Z.shape
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    off = np.zeros(n) if offset is None else offset
    c0 = np.zeros(p) if center is None else center
    y = np.asarray(y, dtype=float)

    def fun(theta):
        b, beta = theta[0], theta[1:]
        eta = off + b + Z @ beta
        dv = beta - c0
        loss = np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) + 0.5 * dv @ dv / C
        r = w * (expit(eta) - y)
        return loss, np.r_[r.sum(), Z.T @ r + dv / C]

    if init is None:
        pbar = np.clip(np.average(y, weights=w), 1e-4, 1 - 1e-4)
        x0 = np.r_[logit(pbar) if intercept0 is None else intercept0, c0]
    else:
        x0 = np.r_[init[1], init[0]]
    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol * max(1.0, w.sum()) * 1e-2})
    return res.x[1:], float(res.x[0])


def encode(X: pd.DataFrame, cat_columns, levels: dict) -> np.ndarray:
    """Numeric matrix of a feature frame: numeric columns as float (NaN kept), categorical
    columns one-hot on their *dictionary* levels (fixed, data-independent, so encoding once for
    all rows leaks nothing; a missing category is all zeros)."""
    parts = []
    for c in X.columns:
        if c in cat_columns:
            v = X[c].astype(object).to_numpy()
            parts.append(np.stack([(v == lev).astype(float) for lev in levels[c]], axis=1))
        else:
            parts.append(X[c].to_numpy(dtype=float)[:, None])
    return np.hstack(parts) if parts else np.zeros((len(X), 0))


class Standardiser:
    """Median imputation and standardisation fitted on training rows only (numpy equivalent of
    :func:`preprocess.make_preprocessor` without indicators, for the many refits of a learning curve)."""

    def fit(self, A: np.ndarray) -> "Standardiser":
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(A, axis=0)
        self.med = np.where(np.isfinite(med), med, 0.0)
        F = np.where(np.isnan(A), self.med, A)
        self.mu = F.mean(axis=0)
        sd = F.std(axis=0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        return self

    def transform(self, A: np.ndarray) -> np.ndarray:
        return (np.where(np.isnan(A), self.med, A) - self.mu) / self.sd


@dataclass
class Context:
    """Everything a strategy needs, computed once per job.

    Features are encoded once (fixed one-hot levels).  Strategies that use the source
    standardise with statistics of the source (always training data, never the target test
    set), so target rows are transformed once and the source model is fitted once;
    ``target_only`` refits its standardiser on each training subset.
    """

    src: Domain
    tgt: Domain
    st: "Settings"
    levels: dict = field(default_factory=dict)

    def __post_init__(self):
        cats = set(self.st.cat_columns)
        self.As = encode(self.src.X, cats, self.levels)
        self.At = encode(self.tgt.X, cats, self.levels)
        pre = Standardiser().fit(self.As)
        self.Zs = pre.transform(self.As)
        self.Zt = pre.transform(self.At)
        self.ws, self.bs = logreg(self.Zs, self.src.y, self.st.C)

    def source_logit(self, idx):
        return self.Zt[idx] @ self.ws + self.bs


def _both_classes(y) -> bool:
    return len(np.unique(y)) == 2


def _constant_scorer(y):
    p = float(np.clip(np.mean(y), 1e-3, 1 - 1e-3))
    return lambda idx: np.full(len(idx), logit(p))


# A strategy: fit(ctx, tr, seed) -> (scorer(idx) -> target logits, info dict); tr/idx index target rows.
def _target_fit(ctx: Context, tr, C):
    y = ctx.tgt.y[tr]
    if not _both_classes(y):
        return _constant_scorer(y)
    pre = Standardiser().fit(ctx.At[tr])
    beta, b = logreg(pre.transform(ctx.At[tr]), y, C)
    return lambda idx: pre.transform(ctx.At[idx]) @ beta + b


def fit_target_only(ctx: Context, tr, seed):
    """Target stays only; the ridge strength is chosen by inner CV on them (a fair reference)."""
    grid = ctx.st.C_grid
    best_C = ctx.st.C
    folds = inner_splits(ctx.tgt.take(tr), ctx.st.inner_folds, seed + 7) if len(grid) > 1 else []
    if folds:
        scores = []
        for C in grid:
            oof = np.zeros(len(tr))
            for a, v in folds:
                oof[v] = _target_fit(ctx, tr[a], C)(tr[v])
            scores.append(auroc(ctx.tgt.y[tr], oof))
        best_C = grid[int(np.nanargmax(scores))] if np.isfinite(scores).any() else ctx.st.C
    return _target_fit(ctx, tr, best_C), {"target_C": best_C}


def fit_source_only(ctx: Context, tr, seed):
    return ctx.source_logit, {}


def fit_pooled(ctx: Context, tr, seed):
    Z = np.vstack([ctx.Zs, ctx.Zt[tr]])
    y = np.r_[ctx.src.y, ctx.tgt.y[tr]]
    beta, b = logreg(Z, y, ctx.st.C, init=(ctx.ws, ctx.bs))
    return (lambda idx: ctx.Zt[idx] @ beta + b), {}


def _augment(Z: np.ndarray, is_src: float, t_scale: float = 1.0) -> np.ndarray:
    s = np.full((len(Z), 1), float(is_src))
    return np.hstack([Z, Z * s, t_scale * Z * (1 - s), s])


def fit_augmented(ctx: Context, tr, seed):
    """Daumé (2007): [shared, source-only, target-only] copies + a database indicator.  The
    target-only copy is scaled by sqrt(C_t / C), C_t being target-only's inner-CV choice, so that
    its ridge penalty matches what the target data alone support."""
    _, tinfo = fit_target_only(ctx, tr, seed)
    t_scale = float(np.sqrt(tinfo["target_C"] / ctx.st.C))
    Z = np.vstack([_augment(ctx.Zs, 1, t_scale), _augment(ctx.Zt[tr], 0, t_scale)])
    y = np.r_[ctx.src.y, ctx.tgt.y[tr]]
    p = ctx.Zs.shape[1]
    init = (np.r_[ctx.ws, np.zeros(2 * p + 1)], ctx.bs)
    beta, b = logreg(Z, y, ctx.st.C, init=init)
    return (lambda idx: _augment(ctx.Zt[idx], 0, t_scale) @ beta + b), {"target_C": tinfo["target_C"]}


def domain_weights(Zs: np.ndarray, Zt: np.ndarray, st: "Settings") -> tuple[np.ndarray, float]:
    """Density-ratio weights p(target|x)/p(source|x) of the source stays from a class-balanced
    domain classifier; normalised to mean 1 and clipped at ``weight_clip``.  Returns the
    weights and their effective sample size."""
    d = np.r_[np.zeros(len(Zs)), np.ones(len(Zt))]
    bal = np.where(d == 1, len(Zs) / max(len(Zt), 1), 1.0)
    beta, b = logreg(np.vstack([Zs, Zt]), d, st.domain_C, weight=bal)
    w = np.exp(np.clip(Zs @ beta + b, -20, 20))
    w = np.minimum(w / w.mean(), st.weight_clip)
    w = w / w.mean()
    return w, float(w.sum() ** 2 / (w**2).sum())


def fit_reweighted(ctx: Context, tr, seed):
    w, ess = domain_weights(ctx.Zs, ctx.Zt[tr], ctx.st)
    Z = np.vstack([ctx.Zs, ctx.Zt[tr]])
    y = np.r_[ctx.src.y, ctx.tgt.y[tr]]
    beta, b = logreg(Z, y, ctx.st.C, weight=np.r_[w, np.ones(len(tr))], init=(ctx.ws, ctx.bs))
    return (lambda idx: ctx.Zt[idx] @ beta + b), {"source_ess": ess}


def fit_finetune(ctx: Context, tr, seed):
    """Source-informed prior: target fit with the ridge penalty centred on the source
    coefficients (strength chosen by inner CV on the target training stays)."""
    y = ctx.tgt.y[tr]
    if not _both_classes(y):
        return ctx.source_logit, {"finetune_C": 0.0}
    Z = ctx.Zt[tr]
    folds = inner_splits(ctx.tgt.take(tr), ctx.st.inner_folds, seed)
    grid = ctx.st.finetune_grid
    best_C = grid[len(grid) // 2]
    if folds and len(grid) > 1:
        scores = []
        for C in grid:
            oof = np.zeros(len(tr))
            for a, v in folds:
                beta, b = logreg(Z[a], y[a], C, center=ctx.ws, intercept0=ctx.bs)
                oof[v] = Z[v] @ beta + b
            scores.append(auroc(y, oof))
        best_C = grid[int(np.nanargmax(scores))]
    beta, b = logreg(Z, y, best_C, center=ctx.ws, intercept0=ctx.bs)
    return (lambda idx: ctx.Zt[idx] @ beta + b), {"finetune_C": best_C}


def fit_stacking(ctx: Context, tr, seed):
    """Second-level logistic model on [source logit, cross-fitted target-only logit]."""
    sub = ctx.tgt.take(tr)
    folds = inner_splits(sub, ctx.st.inner_folds, seed)
    if not folds:
        return ctx.source_logit, {}
    _, tinfo = fit_target_only(ctx, tr, seed)  # the target model's C, tuned as for target_only
    C_t = tinfo["target_C"]
    oof = np.zeros(len(tr))
    for a, v in folds:
        oof[v] = _target_fit(ctx, tr[a], C_t)(tr[v])
    S = np.c_[ctx.source_logit(tr), oof]
    coef, b = logreg(S, sub.y, 1.0)
    target_scorer = _target_fit(ctx, tr, C_t)
    return (lambda idx: np.c_[ctx.source_logit(idx), target_scorer(idx)] @ coef + b), {
        "stack_source_coef": float(coef[0]), "stack_target_coef": float(coef[1]),
    }


FITTERS = {
    "target_only": fit_target_only,
    "source_only": fit_source_only,
    "pooled": fit_pooled,
    "augmented": fit_augmented,
    "reweighted": fit_reweighted,
    "finetune": fit_finetune,
    "stacking": fit_stacking,
}


# ============================================================================ metrics
def auroc(y, score) -> float:
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def brier(y, p) -> float:
    return float(brier_score_loss(y, p)) if len(y) else float("nan")


def corrected_ci(diffs, test_share: float, level: float = 0.95) -> tuple[float, float, float]:
    """Nadeau-Bengio corrected resampled-t interval for a mean over ``J`` repeated random splits
    (Machine Learning 2003): variance ``s^2 (1/J + n_test/n_train)`` instead of ``s^2 / J``, because the
    repeats share stays and are positively correlated; ``n_test/n_train = test_share / (1 - test_share)``
    (the heuristic correlation ``rho = n_test / n``, also the expected overlap of two random test sets)."""
    v = np.asarray(diffs, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else float("nan")), float("nan"), float("nan")
    m, J = float(v.mean()), len(v)
    var = v.var(ddof=1) * (1.0 / J + test_share / (1 - test_share))
    h = float(stats.t.ppf(0.5 + level / 2, J - 1) * np.sqrt(var))
    return m, m - h, m + h


# ============================================================================ learning curve
def size_list(sizes, pool_size: int) -> list[tuple[str, int]]:
    """Config sizes (ints and ``"all"``) as (label, n) pairs; sizes >= the pool collapse into ``all``."""
    out, seen = [], set()
    for s in sizes:
        n = pool_size if s == "all" else int(s)
        label = "all" if (s == "all" or n >= pool_size) else str(n)
        n = min(n, pool_size)
        if label not in seen:
            seen.add(label)
            out.append((label, n))
    return out


def sub_seed(seed: int, *parts) -> int:
    import zlib

    return (int(seed) * 7919 + zlib.crc32("|".join(map(str, parts)).encode())) % (2**32)


def evaluate_once(strategy: str, ctx: Context, tr: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """Fit one strategy on target rows ``tr`` (plus the source), score it on the test rows and
    by inner CV on the target training rows (the source is in every inner training set)."""
    fit = FITTERS[strategy]
    scorer, info = fit(ctx, tr, seed)
    p_test = expit(scorer(test))
    inner, oof = float("nan"), None
    folds = inner_splits(ctx.tgt.take(tr), ctx.st.inner_folds, seed + 1)
    if folds:
        oof = np.zeros(len(tr))
        for a, v in folds:
            sc, _ = fit(ctx, tr[a], seed)
            oof[v] = sc(tr[v])
        inner = auroc(ctx.tgt.y[tr], oof)
    y = ctx.tgt.y[test]
    return {
        "test_auroc": auroc(y, p_test), "test_brier": brier(y, p_test), "inner_auroc": inner,
        # out-of-fold inner predictions (rounded) and labels, for the paired guard test
        "inner_oof": None if oof is None else np.round(oof, 5).tolist(), "inner_y": ctx.tgt.y[tr].astype(np.int8).tolist(),
        **info,
    }


INFO_COLUMNS = ("target_C", "finetune_C", "stack_source_coef", "stack_target_coef", "source_ess")


def learning_curve(
    strategy: str,
    src: Domain,
    tgt: Domain,
    sizes,
    n_seeds: int,
    seed: int,
    test_share: float,
    st: Settings,
    levels: dict,
    n_jobs: int = 1,
) -> pl.DataFrame:
    """One strategy over target training sizes x seeds; one row per (size, seed).

    Seed ``r`` draws its own patient-level split of the target (training pool, test set) and, per
    size, a training subsample of its pool; every size (``all`` too) is repeated over the seeds.
    Splits and subsamples depend only on ``seed`` and the target, so every strategy (and every source
    paired with this target) sees the same splits: comparisons are paired within a seed."""
    if strategy not in FITTERS:
        raise UserInputError("config", "transfer.strategies", f"one of {', '.join(STRATEGIES)}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        ctx = Context(src, tgt, st, levels)
    splits = [target_split(tgt, test_share, sub_seed(seed, "split", r)) for r in range(n_seeds)]
    tasks = []
    for r, (pool, _) in enumerate(splits):
        for label, n in size_list(sizes, len(pool)):
            tasks.append((label, n, r))

    def run(label, n, r):
        pool, test = splits[r]
        rng = np.random.default_rng(sub_seed(seed, "subsample", label, r))
        tr = subsample(pool, tgt.y, n, rng)
        res = evaluate_once(strategy, ctx, tr, test, sub_seed(seed, "fit", label, r))
        return {"strategy": strategy, "size": label, "n_train": len(tr), "n_events": int(tgt.y[tr].sum()), "seed": r, **res}

    # one BLAS thread per worker: nested threading oversubscribes a busy node badly
    with threadpool_limits(limits=1):
        if n_jobs > 1 and len(tasks) > 1:
            from joblib import Parallel, delayed

            rows = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(run)(*t) for t in tasks)
        else:
            rows = [run(*t) for t in tasks]
    df = pl.DataFrame(rows, infer_schema_length=None)
    for c in INFO_COLUMNS:
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    df = df.select(
        "strategy", "size", "n_train", "n_events", "seed",
        *[pl.col(c).cast(pl.Float64).round(6) for c in ("test_auroc", "test_brier", "inner_auroc", *INFO_COLUMNS)],
        pl.col("inner_oof").cast(pl.List(pl.Float64)), pl.col("inner_y").cast(pl.List(pl.Int8)),
    )
    return df.sort("n_train", "seed")


def summarise_curves(curves: pl.DataFrame, test_share: float) -> pl.DataFrame:
    """Mean AUROC/Brier over seeds and the paired gain vs target-only, per strategy x size, each with
    the Nadeau-Bengio corrected interval over the seeds' repeated splits (:func:`corrected_ci`)."""
    ref = curves.filter(pl.col("strategy") == "target_only").select("size", "seed", pl.col("test_auroc").alias("_ref"))
    df = curves.join(ref, on=["size", "seed"], how="left").with_columns((pl.col("test_auroc") - pl.col("_ref")).alias("_gain"))
    rows = []
    for (strategy, size), g in df.group_by("strategy", "size", maintain_order=True):
        a, alo, ahi = corrected_ci(g["test_auroc"].to_numpy(), test_share)
        alo, ahi = float(np.clip(alo, 0, 1)), float(np.clip(ahi, 0, 1))
        b, blo, bhi = corrected_ci(g["test_brier"].to_numpy(), test_share)
        d, dlo, dhi = corrected_ci(g["_gain"].to_numpy(), test_share)
        rows.append({
            "strategy": strategy, "size": size, "n_train": int(g["n_train"].max()), "n_seeds": g.height,
            "auroc": a, "auroc_lo": alo, "auroc_hi": ahi, "brier": b, "brier_lo": blo, "brier_hi": bhi,
            "gain_vs_target_only": d, "gain_lo": dlo, "gain_hi": dhi, "inner_auroc": float(np.nanmean(g["inner_auroc"].to_numpy())),
        })
    out = pl.DataFrame(rows, infer_schema_length=None)
    order = {s: i for i, s in enumerate(STRATEGIES)}
    return (
        out.with_columns(pl.col("strategy").replace_strict(order, default=99).alias("_o"))
        .sort("_o", "n_train").drop("_o")
        .with_columns(pl.col(pl.Float64).round(6))
    )


def delong_diff(y, a, b) -> tuple[float, float]:
    """Paired AUROC difference AUC(a) - AUC(b) on the same stays and its DeLong standard error."""
    y = np.asarray(y).astype(bool)
    if y.all() or (~y).all():
        return float("nan"), float("nan")

    def comps(s):
        P, N = s[y][:, None], s[~y][None, :]
        psi = (P > N) + 0.5 * (P == N)
        return psi.mean(axis=1), psi.mean(axis=0), psi.mean()

    va10, va01, auc_a = comps(np.asarray(a, dtype=float))
    vb10, vb01, auc_b = comps(np.asarray(b, dtype=float))
    m, n = len(va10), len(va01)
    d10, d01 = va10 - vb10, va01 - vb01
    var = (d10.var(ddof=1) if m > 1 else 0.0) / m + (d01.var(ddof=1) if n > 1 else 0.0) / n
    return float(auc_a - auc_b), float(np.sqrt(max(var, 0.0)))


def select_strategies(curves: pl.DataFrame, margin: float, z: float = 1.0) -> pl.DataFrame:
    """Negative-transfer guard, per (size, seed), using the target training stays only: for each
    transfer strategy, the paired inner-validation AUROC gain over target-only (same out-of-fold
    stays) and its DeLong SE; the strategy with the largest lower bound ``gain - z*SE`` is chosen
    if that bound exceeds ``margin``, else target-only.  Test columns are only *reported*."""
    rows = []
    for (size, r), g in curves.group_by("size", "seed", maintain_order=True):
        ref = g.filter(pl.col("strategy") == "target_only")
        if ref.height == 0:
            continue
        ref = ref.row(0, named=True)
        chosen, best_lb, best_gain = "target_only", margin, 0.0
        if ref["inner_oof"] is not None:
            y = np.asarray(ref["inner_y"])
            for cand in g.filter(pl.col("strategy") != "target_only").sort("strategy").iter_rows(named=True):
                if cand["inner_oof"] is None or len(cand["inner_oof"]) != len(y):
                    continue
                gain, se = delong_diff(y, np.asarray(cand["inner_oof"]), np.asarray(ref["inner_oof"]))
                if np.isfinite(gain) and gain - z * se > best_lb:
                    chosen, best_lb, best_gain = cand["strategy"], gain - z * se, gain
        sel = g.filter(pl.col("strategy") == chosen).row(0, named=True)
        rows.append({
            "size": size, "n_train": sel["n_train"], "seed": r, "selected": chosen, "inner_gain": best_gain,
            "test_auroc": sel["test_auroc"], "target_only_auroc": ref["test_auroc"], "gain": sel["test_auroc"] - ref["test_auroc"],
        })
    return pl.DataFrame(rows, infer_schema_length=None).sort("n_train", "seed").with_columns(pl.col(pl.Float64).round(6))


def pair_summary(curves: pl.DataFrame, table: pl.DataFrame, selection: pl.DataFrame, headline_size: int = 200, test_share: float = 0.3) -> dict:
    """Flat headline numbers of one source -> target pair; the gain of the guard's choice over
    target-only carries the Nadeau-Bengio corrected interval over seeds."""
    out: dict = {}
    for r in table.iter_rows(named=True):
        out[f"auroc_{r['strategy']}_n{r['size']}"] = r["auroc"]
        out[f"brier_{r['strategy']}_n{r['size']}"] = r["brier"]
    key = str(headline_size)
    sel = selection.filter(pl.col("size") == key)
    if sel.height:
        counts = sel.group_by("selected").len().sort(["len", "selected"], descending=[True, False])
        out[f"best_strategy_n{key}"] = counts["selected"][0]
        out[f"selected_share_n{key}"] = round(counts["len"][0] / sel.height, 3)
        m, lo, hi = corrected_ci(sel["gain"].to_numpy(), test_share)
        out[f"gain_best_vs_target_only_n{key}"] = m
        out[f"gain_best_vs_target_only_n{key}_lo"] = lo
        out[f"gain_best_vs_target_only_n{key}_hi"] = hi
        top = table.filter((pl.col("size") == key) & (pl.col("strategy") != "target_only")).sort("auroc", descending=True)
        if top.height:
            # descriptive only: ranks by the test set, never used to choose
            out[f"top_test_strategy_n{key}"] = top["strategy"][0]
            out[f"gain_top_test_vs_target_only_n{key}"] = top["gain_vs_target_only"][0]
            out[f"gain_top_test_vs_target_only_n{key}_lo"] = top["gain_lo"][0]
            out[f"gain_top_test_vs_target_only_n{key}_hi"] = top["gain_hi"][0]
    out["n_seeds"] = int(curves["seed"].n_unique()) if curves.height else 0
    out["ci_method"] = "Nadeau-Bengio corrected resampled t over seeds (each seed its own target test split)"
    for size, g in selection.group_by("size", maintain_order=True):
        out[f"gain_selected_vs_target_only_n{size[0]}"] = float(g["gain"].mean())
    return out


# ============================================================================ shortcut check
def shortcut_check(src: Domain, tgt: Domain, st: Settings, dictionary, levels: dict, seed: int, n_repeats: int = 5, top: int = 15) -> pl.DataFrame:
    """Which features predict the database itself: a ridge-logistic domain classifier (source vs
    target) fitted on half of the patients, permutation importance (mean AUROC drop over
    ``n_repeats`` permutations) on the other half.  A categorical column's one-hot block is
    permuted as a whole.  Features of treatment exposure (dictionary kind ``treatment``) or of
    measurement frequency (statistic ``n``) are labelled as known site shortcuts."""
    from threadpoolctl import threadpool_limits

    cats = set(st.cat_columns)
    X = pd.concat([src.X, tgt.X])
    A = encode(X, cats, levels)
    blocks, j = [], 0
    for c in X.columns:
        w = len(levels[c]) if c in cats else 1
        blocks.append((c, slice(j, j + w)))
        j += w
    d = np.r_[np.zeros(len(src)), np.ones(len(tgt))].astype(int)
    groups = np.r_[np.char.add("s", src.groups.astype(str)), np.char.add("t", tgt.groups.astype(str))]
    cv = StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=seed)
    tr, te = next(cv.split(np.zeros(len(d)), d, groups))
    with threadpool_limits(limits=1):
        pre = Standardiser().fit(A[tr])
        beta, b = logreg(pre.transform(A[tr]), d[tr], st.domain_C)
        Zte = pre.transform(A[te])
        base_logit = Zte @ beta + b
        base = auroc(d[te], base_logit)
        rng = np.random.default_rng(seed)
        rows = []
        for c, sl in blocks:
            drops = []
            contrib = Zte[:, sl] @ beta[sl]
            for _ in range(n_repeats):
                perm = rng.permutation(len(te))
                drops.append(base - auroc(d[te], base_logit - contrib + contrib[perm]))
            var = c.split("__")[0]
            stat = c.split("__")[1].rsplit("_", 2)[0] if "__" in c else ""
            kind = dictionary[var].kind if var in dictionary else ""
            reason = "measurement frequency" if stat in FREQUENCY_STATS else ("treatment exposure" if kind == "treatment" else "")
            rows.append({"feature": c, "importance": float(np.mean(drops)), "kind": kind, "known_shortcut": reason})
    df = pl.DataFrame(rows).sort(["importance", "feature"], descending=[True, False])
    df = df.with_columns(
        pl.int_range(1, df.height + 1).alias("rank"),
        (pl.col("importance") >= 0.01).alias("flagged"),
        pl.col("importance").round(5),
        pl.lit(round(base, 4)).alias("domain_auroc"),
    )
    return df.select("rank", "feature", "kind", "importance", "flagged", "known_shortcut", "domain_auroc").head(top)


# ============================================================================ temporal auxiliary information
def aux_targets(cohort: pl.DataFrame, ts: pl.DataFrame, horizon_h: int = 24) -> pl.DataFrame:
    """Auxiliary targets per stay: SOFA change from time zero to ``horizon_h`` (last value at or
    before each hour) and shock reversal (``shock_reversal_7d`` when present)."""
    sofa = ts.filter(pl.col("variable") == "sofa").sort("stay_id", "hour")
    at0 = sofa.filter(pl.col("hour") <= 0).group_by("stay_id").agg(pl.col("value").last().alias("_s0"))
    atH = sofa.filter((pl.col("hour") > 0) & (pl.col("hour") <= horizon_h)).group_by("stay_id").agg(pl.col("value").last().alias("_sH"))
    out = cohort.select("stay_id").join(at0, on="stay_id", how="left").join(atH, on="stay_id", how="left")
    out = out.with_columns((pl.col("_sH") - pl.col("_s0")).alias("aux_sofa_change")).select("stay_id", "aux_sofa_change")
    if "shock_reversal_7d" in cohort.columns:
        out = out.join(cohort.select("stay_id", pl.col("shock_reversal_7d").cast(pl.Float64).alias("aux_shock_reversal")), on="stay_id", how="left")
    return out.sort("stay_id")


def _np_fit(A: np.ndarray, y, C: float, weight=None):
    """Standardise on the training rows, ridge-logistic fit; returns a scorer of raw rows (logits)."""
    y = np.asarray(y, dtype=float)
    if weight is None and len(np.unique(y)) < 2:
        p = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        return lambda B: np.full(len(B), logit(p))
    pre = Standardiser().fit(A)
    beta, b = logreg(pre.transform(A), y, C, weight=weight)
    return lambda B: pre.transform(B) @ beta + b


def _fit_soft(A, y, soft, imitation: float, C: float):
    """Generalized distillation: a logistic student on targets (1-imitation)*y + imitation*soft,
    implemented as sample duplication (each stay once as 1 and once as 0, weighted)."""
    q = np.clip((1 - imitation) * y + imitation * soft, 0.0, 1.0)
    return _np_fit(np.vstack([A, A]), np.r_[np.ones(len(A)), np.zeros(len(A))], C, weight=np.r_[q, 1 - q])


def _crossfit(fit_fn, A, target, groups, y_strat, k, seed):
    """Out-of-fold predictions of ``fit_fn(A, target) -> scorer`` on the training rows."""
    oof = np.full(len(A), np.nan)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for tr, va in cv.split(np.zeros(len(A)), y_strat, groups):
        oof[va] = fit_fn(A[tr], target[tr])(A[va])
    return oof


def _aux_model(C: float, binary: bool):
    def fit_fn(A, t):
        ok = np.isfinite(t)
        if ok.sum() < 10 or (binary and len(np.unique(t[ok])) < 2):
            const = float(np.nanmean(t)) if ok.any() else 0.0
            return lambda B: np.full(len(B), const)
        if binary:
            return _np_fit(A[ok], t[ok], C)
        pre = Standardiser().fit(A[ok])
        m = Ridge(alpha=1.0 / C).fit(pre.transform(A[ok]), t[ok])
        return lambda B: m.predict(pre.transform(B))

    return fit_fn


def temporal_experiment(
    early: np.ndarray,
    full: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    aux: dict,
    n_repeats: int,
    train_sizes,
    test_share: float,
    imitation: float,
    seed: int,
    st: Settings,
) -> pl.DataFrame:
    """Early-prediction AUROC of: the early-only student, the teacher (full trajectory; an upper
    bound, not available at decision time), the distilled student (LUPI) and the early model with
    cross-fitted auxiliary-target predictions as extra inputs; one row per (size, repeat, method).

    ``early``/``full`` are encoded matrices (:func:`encode`), ``aux`` maps names to arrays (NaN =
    not defined).  Every model is standardised and fitted on the training rows of its split only."""
    from threadpoolctl import threadpool_limits

    dom = Domain(pd.DataFrame(index=range(len(y))), y, groups)
    C = st.C
    rows = []
    with threadpool_limits(limits=1):
        for r in range(n_repeats):
            pool, te = target_split(dom, test_share, sub_seed(seed, "temporal", r))
            for label, n in size_list(train_sizes, len(pool)):
                rng = np.random.default_rng(sub_seed(seed, "temporal_sub", n, r))
                tr = subsample(pool, y, n, rng)
                ytr, gtr = y[tr], groups[tr]
                k = min(st.inner_folds, int(np.bincount(ytr, minlength=2).min()))
                if k < 2:
                    continue
                Etr, Ete, Ftr, Fte = early[tr], early[te], full[tr], full[te]
                res = {"early_only": _np_fit(Etr, ytr, C)(Ete), "teacher_full": _np_fit(Ftr, ytr, C)(Fte)}
                # teacher's soft targets on the training stays, cross-fitted (never its own fit)
                soft = expit(_crossfit(lambda A, t: _np_fit(A, t, C), Ftr, ytr, gtr, ytr, k, sub_seed(seed, "teach", r, n)))
                res["lupi_distilled"] = _fit_soft(Etr, ytr, soft, imitation, C)(Ete)
                # auxiliary targets: predicted from early data (cross-fitted on train), stacked as inputs
                x_tr, x_te = [], []
                for name, values in aux.items():
                    t = np.asarray(values, dtype=float)[tr]
                    binary = set(np.unique(t[np.isfinite(t)])) <= {0.0, 1.0}
                    fit_fn = _aux_model(C, binary)
                    x_tr.append(_crossfit(fit_fn, Etr, t, gtr, ytr, k, sub_seed(seed, "aux", name, r, n)))
                    x_te.append(fit_fn(Etr, t)(Ete))
                if x_tr:
                    res["aux_stacked"] = _np_fit(np.c_[Etr, np.array(x_tr).T], ytr, C)(np.c_[Ete, np.array(x_te).T])
                for method, score in res.items():
                    p = expit(score)
                    rows.append({"size": label, "n_train": len(tr), "repeat": r, "method": method, "auroc": auroc(y[te], p), "brier": brier(y[te], p)})
    return pl.DataFrame(rows).with_columns(pl.col("auroc").round(6), pl.col("brier").round(6))


TEMPORAL_METHODS = ("early_only", "lupi_distilled", "aux_stacked", "teacher_full")


def summarise_temporal(res: pl.DataFrame, test_share: float) -> pl.DataFrame:
    """Mean AUROC per method and size, and the gain over the early-only student with a
    Nadeau-Bengio corrected interval over the repeated splits."""
    ref = res.filter(pl.col("method") == "early_only").select("size", "repeat", pl.col("auroc").alias("_ref"))
    df = res.join(ref, on=["size", "repeat"], how="left").with_columns((pl.col("auroc") - pl.col("_ref")).alias("_gain"))
    rows = []
    for (size, method), g in df.group_by("size", "method", maintain_order=True):
        a, alo, ahi = corrected_ci(g["auroc"].to_numpy(), test_share)
        alo, ahi = float(np.clip(alo, 0, 1)), float(np.clip(ahi, 0, 1))
        d, dlo, dhi = corrected_ci(g["_gain"].to_numpy(), test_share)
        rows.append({"size": size, "n_train": int(g["n_train"].max()), "method": method, "n_repeats": g.height,
                     "auroc": a, "auroc_lo": alo, "auroc_hi": ahi, "brier": float(g["brier"].mean()),
                     "gain_vs_early_only": d, "gain_lo": dlo, "gain_hi": dhi})
    order = {m: i for i, m in enumerate(TEMPORAL_METHODS)}
    return (
        pl.DataFrame(rows).with_columns(pl.col("method").replace_strict(order, default=99).alias("_o"))
        .sort("n_train", "_o").drop("_o").with_columns(pl.col(pl.Float64).round(6))
    )


def build_temporal_features(cohort: pl.DataFrame, ts: pl.DataFrame, dictionary, baseline_start_h: int, early_h: int, end_h: int, statistics):
    """Early (static + baseline + [0, early_h]) and full (static + baseline + [0, end_h]) stay features."""
    from .features import summarise_window

    static_cols = [c for c in cohort.columns if c in dictionary.static]
    base = cohort.select(["stay_id", *static_cols]).join(
        summarise_window(ts, dictionary, baseline_start_h, 0, statistics), on="stay_id", how="left"
    )
    early = base.join(summarise_window(ts, dictionary, 0, early_h, statistics), on="stay_id", how="left").sort("stay_id")
    full = base.join(summarise_window(ts, dictionary, 0, end_h, statistics), on="stay_id", how="left").sort("stay_id")
    return early, full


def keep_statistics(columns: list[str], statistics) -> list[str]:
    """Static columns plus window summaries whose statistic is in ``statistics`` (all when None)."""
    if statistics is None:
        return list(columns)
    keep = set(statistics)
    return [c for c in columns if "__" not in c or c.split("__", 1)[1].rsplit("_", 2)[0] in keep]


def category_levels(cat_columns, dictionary, *frames) -> dict:
    """One-hot levels of categorical columns: the dictionary's ``levels`` (else the values seen)."""
    out = {}
    for c in cat_columns:
        lev = dictionary[c].levels if c in dictionary else None
        if not lev:
            seen = set()
            for f in frames:
                seen |= {v for v in f[c].dropna().unique()}
            lev = tuple(sorted(map(str, seen)))
        out[c] = tuple(lev)
    return out


# ============================================================================ job helpers
def prepare_pair(src_feats, src_cohort, tgt_feats, tgt_cohort, dictionary, outcome, spec, statistics, selected_path=None, for_shortcuts=False):
    """Source and target :class:`Domain` on their shared, non-empty feature columns.

    ``statistics`` restricts window summaries to those statistics (``None`` = all); the shortcut
    check passes ``for_shortcuts=True`` to look at every shared column instead."""
    cols = shared_columns(spec, tgt_feats.columns, src_feats.columns, selected_path)
    if not for_shortcuts:
        cols = keep_statistics(cols, statistics)
    src = load_domain(src_feats, src_cohort, cols, outcome, dictionary, "source cohort.parquet")
    tgt = load_domain(tgt_feats, tgt_cohort, cols, outcome, dictionary, "target cohort.parquet")
    cols = drop_empty_columns(src, tgt)
    if not cols:
        raise UserInputError("stay_features.parquet", None, "at least one feature observed in both source and target")
    src.X, tgt.X = src.X[cols], tgt.X[cols]
    cats = categorical_columns(cols, dictionary)
    levels = category_levels(cats, dictionary, src.X, tgt.X)
    return src, tgt, cols, levels


def settings_from_config(tcfg: dict, cols, dictionary) -> Settings:
    return Settings(
        C=float(tcfg["C"]),
        C_grid=tuple(float(c) for c in tcfg["C_grid"]),
        inner_folds=int(tcfg["inner_folds"]),
        weight_clip=float(tcfg["weight_clip"]),
        domain_C=float(tcfg["domain_C"]),
        finetune_grid=tuple(float(c) for c in tcfg["finetune_grid"]),
        cat_columns=tuple(categorical_columns(list(cols), dictionary)),
    )


def temporal_headline(table: pl.DataFrame, aux_names) -> dict:
    """Flat numbers of the temporal experiment; ``gain_lupi_early`` etc. at the first (smallest) size."""
    out = {"aux_targets": ",".join(aux_names)}
    sizes = table["size"].unique(maintain_order=True).to_list()
    for i, size in enumerate(sizes):
        g = table.filter(pl.col("size") == size)
        sfx = "" if i == 0 else f"_n{size}"
        for method, key in (("lupi_distilled", "lupi"), ("aux_stacked", "aux"), ("teacher_full", "teacher")):
            r = g.filter(pl.col("method") == method)
            if r.height:
                out[f"gain_{key}_early{sfx}"] = r["gain_vs_early_only"][0]
                out[f"gain_{key}_early{sfx}_lo"] = r["gain_lo"][0]
                out[f"gain_{key}_early{sfx}_hi"] = r["gain_hi"][0]
        for r in g.iter_rows(named=True):
            out[f"auroc_early_{r['method']}_n{size}"] = r["auroc"]
    out["temporal_headline_size"] = str(sizes[0]) if sizes else None
    return out


def learning_curve_figure(table: pl.DataFrame, title: str):
    """Mean test AUROC and Brier score against target training size, one line per strategy, 95% CI bands."""
    from .plotting import PALETTE, figure

    fig, axes = figure(11.0, 4.3, ncols=2)
    strategies = [s for s in STRATEGIES if s in set(table["strategy"].to_list())]
    for i, s in enumerate(strategies):
        g = table.filter(pl.col("strategy") == s).sort("n_train")
        x = g["n_train"].to_numpy()
        for ax, m in zip(axes, ("auroc", "brier")):
            ax.plot(x, g[m].to_numpy(), marker="o", ms=3.5, lw=1.6, color=PALETTE[i % len(PALETTE)], label=s.replace("_", " "),
                    ls="--" if s in ("target_only", "source_only") else "-")
            lo, hi = g[f"{m}_lo"].to_numpy(), g[f"{m}_hi"].to_numpy()
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(x[ok], lo[ok], hi[ok], color=PALETTE[i % len(PALETTE)], alpha=0.12, lw=0)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ticks = sorted(set(table["n_train"].to_list()))
    for ax, lab in zip(axes, ("Test AUROC (target)", "Test Brier score (target)")):
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("Target training stays")
        ax.set_ylabel(lab)
    axes[0].legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle(f"Learning curves, {title}", fontsize=11)
    fig.tight_layout()
    return fig
