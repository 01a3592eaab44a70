"""Phase 1 helpers: data dictionary coverage and cohort summary with small-cell suppression."""

from __future__ import annotations

import polars as pl

from .contract import BINARY_OUTCOMES
from .dictionary import Dictionary
from .io import format_count, suppress_count


def dictionary_coverage(cohort: pl.DataFrame, ts: pl.DataFrame, dictionary: Dictionary, min_cell_count: int) -> pl.DataFrame:
    """One row per dictionary variable: metadata and the share of stays with at least one value.

    Counts under ``min_cell_count`` are shown as ``"<k"``.
    """
    n = cohort.height
    ts_cov = ts.group_by("variable").agg(
        pl.col("stay_id").n_unique().alias("n_stays"), pl.len().alias("n_values")
    )
    ts_cov = {r["variable"]: r for r in ts_cov.iter_rows(named=True)}
    rows = []
    for v in dictionary.variables.values():
        if v.source == "static":
            n_with = int(cohort[v.name].is_not_null().sum()) if v.name in cohort.columns else 0
            n_values = n_with
        else:
            r = ts_cov.get(v.name)
            n_with = int(r["n_stays"]) if r else 0
            n_values = int(r["n_values"]) if r else 0
        rows.append(
            {
                "variable": v.name,
                "label": v.label,
                "unit": v.unit,
                "kind": v.kind,
                "type": v.type,
                "source": v.source,
                "plausible_range": "" if v.range is None else f"[{v.range[0]:g}, {v.range[1]:g}]",
                "aggregation": v.aggregation if v.source == "hourly" else "",
                "stays_with_value": format_count(n_with, min_cell_count),
                "coverage_pct": round(100.0 * n_with / n, 1) if n and suppress_count(n_with, min_cell_count) is not None else None,
                "values_per_stay": round(n_values / n_with, 1) if n_with else 0.0,
                # not recorded at all in this database: no feature, selection candidate or cluster input comes from it
                "status": "recorded" if n_with else "absent",
            }
        )
    return pl.DataFrame(rows)


def absent_variables(cohort: pl.DataFrame, ts: pl.DataFrame, dictionary: Dictionary) -> dict[str, list[str]]:
    """Dictionary variables with no value at all in this database, by source (``static``, ``hourly``).

    Such a variable is left out of every analysis of the database (never imputed to a constant); the
    list goes to ``summary/cohort.json`` so that the absence is said, e.g. no hourly vitals in a trial's
    case-report forms.
    """
    present = set(ts["variable"].unique().to_list()) if ts.height else set()
    out: dict[str, list[str]] = {"static": [], "hourly": []}
    for v in dictionary.variables.values():
        if v.source == "static":
            if v.name not in cohort.columns or cohort[v.name].null_count() == cohort.height:
                out["static"].append(v.name)
        elif v.name not in present:
            out["hourly"].append(v.name)
    return out


def _rate(events: int, total: int, k: int) -> float | None:
    """A proportion, or ``None`` when the events or non-events are a small cell."""
    if total == 0 or suppress_count(events, k) is None or suppress_count(total - events, k) is None:
        return None
    return events / total


def cohort_summary(cohort: pl.DataFrame, min_cell_count: int) -> tuple[pl.DataFrame, dict]:
    """Counts by CS group and outcome rates, with primary and complementary suppression.

    Returns the table (text cells, ``"<k"`` where suppressed) and headline numbers for
    ``summary/cohort.json`` (``None`` where suppressed).
    """
    k = min_cell_count
    groups = {"all": cohort, "cs": cohort.filter(pl.col("cs")), "no_cs": cohort.filter(~pl.col("cs"))}
    n_cs, n_no = groups["cs"].height, groups["no_cs"].height
    # complementary suppression: if one group is suppressed, the other would reveal it via the total
    hide_groups = suppress_count(n_cs, k) is None or suppress_count(n_no, k) is None
    rows = []
    headline: dict = {
        "n_stays": cohort.height,
        "n_patients": cohort["patient_id"].n_unique(),
        "n_cs": None if hide_groups else n_cs,
        "n_no_cs": None if hide_groups else n_no,
    }
    for name, g in groups.items():
        hidden = hide_groups and name != "all"
        row = {"group": name, "n_stays": f"<{k}" if hidden else format_count(g.height, k)}
        for out in (o for o in BINARY_OUTCOMES if o in cohort.columns):  # optional outcomes only when recorded
            known = g[out].drop_nulls()
            events = int(known.sum())
            rate = None if hidden else _rate(events, known.len(), k)
            row[f"{out}_n"] = f"<{k}" if hidden else format_count(events, k)
            row[f"{out}_pct"] = None if rate is None else round(100 * rate, 1)
            row[f"{out}_known"] = f"<{k}" if hidden else format_count(known.len(), k)
            if name != "all":
                headline[f"{out.replace('hospital_', '')}_{name}"] = rate
        los = g["icu_los_days"].drop_nulls()
        enough = not hidden and los.len() >= k
        row["icu_los_days_median"] = round(float(los.median()), 2) if enough else None
        row["icu_los_days_iqr"] = (
            f"[{los.quantile(0.25):.2f}, {los.quantile(0.75):.2f}]" if enough else None
        )
        rows.append(row)
    drugs = cohort.filter(pl.col("cs")).group_by("cs_drug").len()
    for r in drugs.iter_rows(named=True):
        headline[f"n_cs_by_drug_{r['cs_drug'] or 'unknown'}"] = suppress_count(r["len"], k)
    return pl.DataFrame(rows), headline
