"""Which method's solution is the primary one (characterised, matched, crossed with treatment).

The rule is fixed in the config (``cluster.primary_rule``) and never looks at a simulator's truth:

* ``fixed``          the method named by ``cluster.primary_method``;
* ``null_evidence``  the method whose pooled solution departs most from clusterless reference data
                     (smallest null-reference p, then largest RCSI, then the order of ``methods_run``).
                     Picking the smallest of M p-values is a selection: the primary's clusters are kept
                     only when that p times M (Bonferroni over the methods) is under ``cluster.null_reference.alpha``;
                     otherwise the primary solution is one cluster in every population.

Each rule is ``f(fits, cfg) -> (method, keep_clusters, reason)`` where ``fits`` maps method -> the
pooled ``fit.json`` contents.  The same method is used for the cs, no_cs and pooled populations so
that their clusters are comparable.
"""

from __future__ import annotations

import math


def _fixed(fits: dict, cfg: dict) -> tuple[str, bool, str]:
    method = cfg["primary_method"]
    return method, True, f"primary method fixed in the config: {method}"


def _null_evidence(fits: dict, cfg: dict) -> tuple[str, bool, str]:
    order = list(cfg["methods_run"])
    alpha = float(cfg.get("null_reference", {}).get("alpha", 0.05))

    def key(m):
        f = fits[m]
        p = f.get("null_p")
        r = f.get("rcsi")
        return (1.0 if p is None else float(p), -(r if r is not None and math.isfinite(r) else -math.inf), order.index(m))

    method = min(fits, key=key)
    p = fits[method].get("null_p")
    if p is None:
        return method, True, f"primary method {method}: no null reference was computed (cluster.null_reference.n_ref < 2)"
    p_adj = min(1.0, float(p) * len(fits))
    keep = p_adj < alpha
    return method, keep, (
        f"primary method {method}: smallest pooled null-reference p ({float(p):.3g}; x {len(fits)} methods = {p_adj:.3g}"
        f" {'<' if keep else '>='} {alpha:g}{'' if keep else ': one cluster reported'})"
    )


#: rule name -> f(pooled fits by method, cluster config) -> (method, keep its clusters, reason)
PRIMARY_RULES = {"fixed": _fixed, "null_evidence": _null_evidence}


def choose_primary(fits: dict, cfg: dict) -> tuple[str, bool, str]:
    """Apply ``cfg['primary_rule']`` (default ``fixed``) to the pooled fits of every method."""
    rule = cfg.get("primary_rule", "fixed")
    if rule not in PRIMARY_RULES:
        raise ValueError(f"unknown cluster.primary_rule {rule!r}")
    return PRIMARY_RULES[rule](fits, cfg)
