"""Replication of a clustering across databases.

A classifier (multinomial logistic regression inside a Pipeline with the preprocessing, so the
preprocessing is fitted on the source only) learns the source database's cluster labels from the
clustering features and predicts labels in the target database.  Agreement with the target's native
clustering: adjusted Rand index (label-free) and Cohen's kappa after matching predicted to native
labels by the Hungarian algorithm on their cross-tabulation (labels are arbitrary between runs).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, cohen_kappa_score
from sklearn.pipeline import make_pipeline

from ..preprocess import make_preprocessor


def align_labels(pred: np.ndarray, native: np.ndarray) -> np.ndarray:
    """Relabel ``pred`` to maximise agreement with ``native`` (Hungarian on the contingency table)."""
    a, b = np.unique(pred), np.unique(native)
    ct = np.array([[np.sum((pred == i) & (native == j)) for j in b] for i in a])
    r, c = linear_sum_assignment(-ct)
    mapping = {a[i]: b[j] for i, j in zip(r, c)}
    extra = max(b.max(), a.max()) + 1
    out = np.empty_like(pred)
    for i, u in enumerate(a):
        out[pred == u] = mapping.get(u, extra + i)
    return out


def transfer_labels(X_src: pd.DataFrame, y_src: np.ndarray, X_tgt: pd.DataFrame, categorical: list[str], seed: int) -> np.ndarray:
    numeric = [c for c in X_src.columns if c not in categorical]
    model = make_pipeline(make_preprocessor(numeric, categorical, indicators=False), LogisticRegression(max_iter=1000, C=1.0))
    keep = y_src >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_src[keep], y_src[keep])
    return model.predict(X_tgt)


def replicate(X_src, y_src, X_tgt, y_tgt, categorical, seed) -> dict:
    """Agreement of the source clustering, transported by a classifier, with the target's own clustering.

    A source with one cluster (k = 1) transports as one cluster: ARI is 1 when the target is one
    cluster too and 0 otherwise; kappa is undefined (NaN) when either side has a single label.
    """
    cols = [c for c in X_src.columns if c in X_tgt.columns]
    source_k = len(np.unique(y_src[y_src >= 0]))
    if source_k >= 2:
        pred = transfer_labels(X_src[cols], y_src, X_tgt[cols], [c for c in categorical if c in cols], seed)
    else:
        pred = np.full(len(X_tgt), int(y_src[y_src >= 0][0]) if source_k else 0)
    keep = y_tgt >= 0
    aligned = align_labels(pred[keep], y_tgt[keep])
    single = len(np.unique(aligned)) < 2 or len(np.unique(y_tgt[keep])) < 2
    return {
        "ari": float(adjusted_rand_score(y_tgt[keep], pred[keep])),
        "kappa": float("nan") if single else float(cohen_kappa_score(y_tgt[keep], aligned)),
        "k_source": int(len(np.unique(y_src[y_src >= 0]))),
        "k_target": int(len(np.unique(y_tgt[keep]))),
        "n_features": len(cols),
    }
