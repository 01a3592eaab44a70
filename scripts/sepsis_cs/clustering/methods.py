"""Clustering methods behind one interface: ``fit_grid(method, data, ks, seed)`` -> {k: labels}.

* ``kmeans``     k-means (Euclidean, standardised features), k-means++ starts;
* ``gmm``        Gaussian mixture on the continuous features (binary comorbidities are left to the
                 profiles: Gaussian components on 0/1 columns degenerate), BIC available;
* ``ward``       Ward hierarchical clustering; one tree per run, cut at every k;
* ``gower_pam``  Gower distance (mixed types) + PAM (k-medoids with BUILD start and FastPAM1 swaps);
* ``hdbscan``    HDBSCAN on the first principal components of the continuous features; finds its own number of clusters
                 (stays labelled noise get cluster -1); the k grid does not apply.

``ward`` and ``gower_pam`` need all pairwise distances (memory and time grow with n^2: about 1.6 GB at
20,000 stays and 40-80 GB at 100,000).  Above ``max_pairwise_items`` stays they are fitted on a
deterministic random panel of that many stays (drawn from the seed) and every other stay is assigned
to the nearest panel cluster: the nearest Ward centroid in the scaled feature space, or the nearest
medoid by Gower distance (computed to the k medoids only, in blocks of rows).  At or below the cap
the whole population is fitted as before.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from .prep import Prepared, gower, gower_cross

K_METHODS = ("kmeans", "gmm", "ward", "gower_pam")
ALL_METHODS = (*K_METHODS, "hdbscan")


def sub_seed(seed: int, *parts) -> int:
    """A deterministic sub-seed from a seed and labels (stable across processes)."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2**32)


def pairwise_panel(n: int, max_items: int | None, seed: int) -> np.ndarray | None:
    """Sorted row positions of the random panel a pairwise method is fitted on; None when n <= max_items."""
    if max_items is None or n <= int(max_items):
        return None
    rng = np.random.default_rng(sub_seed(seed, "pairwise_panel"))
    return np.sort(rng.choice(n, size=int(max_items), replace=False))


def assign_to_centroids(X: np.ndarray, panel: np.ndarray, panel_labels: np.ndarray) -> np.ndarray:
    """Labels of all rows of X: panel rows keep ``panel_labels``, the others go to the nearest panel-cluster centroid."""
    Xp = X[panel]
    clusters = np.unique(panel_labels)
    centroids = np.stack([Xp[panel_labels == c].mean(0) for c in clusters])
    # squared Euclidean distance to each centroid (n x k; k is small)
    d2 = (X**2).sum(1)[:, None] - 2.0 * X @ centroids.T + (centroids**2).sum(1)[None, :]
    labels = clusters[np.argmin(d2, axis=1)]
    labels[panel] = panel_labels
    return labels


def assign_to_medoids(
    G: np.ndarray, kinds: list[str], medoid_rows: np.ndarray, panel: np.ndarray, panel_labels: np.ndarray, block: int = 50_000
) -> np.ndarray:
    """Labels of all rows of G: panel rows keep ``panel_labels``, the others go to the medoid (rows of G) at the smallest Gower distance."""
    labels = np.empty(G.shape[0], dtype=panel_labels.dtype)
    M = G[medoid_rows]
    for start in range(0, G.shape[0], int(block)):
        labels[start : start + int(block)] = np.argmin(gower_cross(G[start : start + int(block)], M, kinds), axis=1)
    labels[panel] = panel_labels
    return labels


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Deterministic labels 0..k-1 ordered by decreasing size (ties: first occurrence); -1 kept."""
    labels = np.asarray(labels)
    out = np.full(labels.shape, -1, dtype=int)
    uniq = [u for u in np.unique(labels) if u != -1]
    first = {u: int(np.argmax(labels == u)) for u in uniq}
    order = sorted(uniq, key=lambda u: (-int((labels == u).sum()), first[u]))
    for new, u in enumerate(order):
        out[labels == u] = new
    return out


# ----------------------------------------------------------------------------- PAM
def pam(D: np.ndarray, k: int, max_iter: int = 100, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-medoids by PAM: greedy BUILD (or ``init`` medoids completed greedily) then FastPAM1 swaps.

    Each iteration evaluates every (candidate, medoid) swap in O(n^2) with array operations and
    applies the best one until no swap lowers the total deviation.  Returns (labels, medoids).
    Deterministic (no random start).
    """
    D = np.asarray(D, dtype=np.float32)
    n = D.shape[0]
    k = min(k, n)
    medoids = [int(i) for i in init[:k]] if init is not None else [int(np.argmin(D.sum(1)))]
    dn = D[medoids].min(0)
    while len(medoids) < k:
        gain = np.maximum(dn[None, :] - D, 0).sum(1)
        gain[medoids] = -1
        m = int(np.argmax(gain))
        medoids.append(m)
        dn = np.minimum(dn, D[m])
    medoids = np.array(medoids)
    cols = np.arange(n)
    for _ in range(max_iter):
        Dm = D[medoids]  # k x n
        order = np.argsort(Dm, axis=0, kind="stable")
        nn = order[0]
        dn = Dm[nn, cols]
        ds = Dm[order[1], cols] if k > 1 else np.full(n, np.inf, dtype=np.float32)
        # change of total deviation when candidate x replaces medoid i (FastPAM1, Schubert & Rousseeuw)
        neg = D - dn[None, :]
        np.minimum(neg, 0, out=neg)  # objects that move to x whatever medoid leaves
        shared = neg.sum(1, dtype=np.float64)
        R = np.minimum(D, ds[None, :])
        R -= dn[None, :]
        R -= neg  # extra loss for the objects of the removed medoid
        onehot = np.zeros((n, k), dtype=np.float32)
        onehot[cols, nn] = 1.0
        delta = shared[:, None] + (R @ onehot).astype(np.float64)  # n x k
        delta[medoids, :] = np.inf
        x, i = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if delta[x, i] >= -1e-6:
            break
        medoids[i] = x
    labels = np.argmin(D[medoids], axis=0)
    return labels, medoids


# ----------------------------------------------------------------------------- one interface
def hdbscan_labels(X: np.ndarray, min_cluster_frac: float, n_components: int, seed: int, min_samples: int | None = 5) -> np.ndarray:
    """HDBSCAN on the first principal components of X (density is not meaningful on 0/1 columns)."""
    n = X.shape[0]
    Z = PCA(n_components=min(n_components, X.shape[1]), random_state=seed).fit_transform(X)
    mcs = max(5, int(round(min_cluster_frac * n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return HDBSCAN(min_cluster_size=mcs, min_samples=min_samples, copy=True).fit_predict(Z)


def fit_grid(
    method: str,
    data: Prepared,
    ks,
    seed: int,
    settings: dict | None = None,
    D: np.ndarray | None = None,
    max_pairwise_items: int | None = None,
) -> dict:
    """Labels for every k in ``ks`` (``{None: labels}`` for hdbscan), plus ``_bic`` for gmm.

    ``D`` is a precomputed Gower matrix of the same rows (computed here when absent; when given, it is
    used as is and no panel is drawn).  ``ward`` and ``gower_pam`` on more than ``max_pairwise_items``
    rows are fitted on a random panel of that many rows (seed-derived) and the other rows assigned to
    the nearest centroid / medoid; ``_panel`` gives the number of rows fitted (all rows for the other methods).
    """
    s = settings or {}
    n = data.X.shape[0]
    out: dict = {"_panel": n}
    if method == "kmeans":
        for k in ks:
            km = KMeans(n_clusters=k, n_init=int(s.get("n_init", 3)), random_state=seed).fit(data.X)
            out[k] = km.labels_
    elif method == "gmm":
        Xc = data.X[:, data.continuous] if len(data.continuous) else data.X
        bic = {}
        for k in ks:
            gm = GaussianMixture(
                n_components=k,
                covariance_type=s.get("covariance_type", "full"),
                n_init=int(s.get("n_init", 1)),
                reg_covar=1e-4,
                random_state=seed,
            ).fit(Xc)
            out[k] = gm.predict(Xc)
            bic[k] = float(gm.bic(Xc))
        out["_bic"] = bic
    elif method == "ward":
        panel = pairwise_panel(n, max_pairwise_items, seed)
        Z = linkage(data.X if panel is None else data.X[panel], method="ward")
        for k in ks:
            lab = fcluster(Z, t=k, criterion="maxclust") - 1
            out[k] = lab if panel is None else assign_to_centroids(data.X, panel, lab)
        out["_panel"] = n if panel is None else len(panel)
    elif method == "gower_pam":
        panel = pairwise_panel(n, max_pairwise_items, seed) if D is None else None
        if D is None:
            D = gower(data.G if panel is None else data.G[panel], data.g_kind)
        med = None
        for k in sorted(ks):  # warm start: the k-1 medoids plus one greedy BUILD step
            lab, med = pam(D, k, init=med)
            out[k] = lab if panel is None else assign_to_medoids(data.G, data.g_kind, panel[med], panel, lab)
        out["_panel"] = n if panel is None else len(panel)
    elif method == "hdbscan":
        Xc = data.X[:, data.continuous] if len(data.continuous) else data.X
        ms = s.get("min_samples", 5)
        out[None] = hdbscan_labels(Xc, float(s.get("min_cluster_frac", 0.05)), int(s.get("n_components", 3)), seed, None if ms is None else int(ms))
    else:
        raise ValueError(f"unknown clustering method {method!r}")
    return out
