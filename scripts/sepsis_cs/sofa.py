"""Sequential Organ Failure Assessment (SOFA) components as polars expressions.

Shared by the simulator and the database adapters so that the score is computed one
way everywhere.  Inputs are harmonised units (config/variables.yaml); the renal
component uses creatinine only and the respiratory one the PaO2/FiO2 ratio only
(ventilation status is not consistently available hourly in every source).
"""

from __future__ import annotations

import polars as pl

SOFA_COMPONENTS = ("sofa_resp", "sofa_coag", "sofa_liver", "sofa_cardio", "sofa_cns", "sofa_renal")


def _steps(col: str, cuts: list[float], scores: list[int], below: bool) -> pl.Expr:
    """Score by thresholds; ``below`` means lower values are worse."""
    x = pl.col(col)
    expr = pl.lit(0, dtype=pl.Int8)
    # apply from mildest to worst so the worst matching threshold wins
    for cut, score in zip(cuts, scores):
        cond = (x < cut) if below else (x >= cut)
        expr = pl.when(cond).then(pl.lit(score, dtype=pl.Int8)).otherwise(expr)
    return pl.when(x.is_null()).then(None).otherwise(expr)


def sofa_component_exprs() -> dict[str, pl.Expr]:
    """Expressions computing each SOFA component from a wide frame of hourly variables.

    Expects columns ``pf_ratio, platelets, bilirubin, map, norepinephrine_eq, gcs, creatinine``
    (null where unknown); a component is null when its input is null.
    """
    cardio = (
        pl.when(pl.col("norepinephrine_eq") > 0.1)
        .then(pl.lit(4, dtype=pl.Int8))
        .when(pl.col("norepinephrine_eq") > 0)
        .then(pl.lit(3, dtype=pl.Int8))
        .when(pl.col("map") < 70)
        .then(pl.lit(1, dtype=pl.Int8))
        .when(pl.col("map").is_not_null())
        .then(pl.lit(0, dtype=pl.Int8))
        .otherwise(None)
    )
    return {
        "sofa_resp": _steps("pf_ratio", [400, 300, 200, 100], [1, 2, 3, 4], below=True),
        "sofa_coag": _steps("platelets", [150, 100, 50, 20], [1, 2, 3, 4], below=True),
        "sofa_liver": _steps("bilirubin", [1.2, 2.0, 6.0, 12.0], [1, 2, 3, 4], below=False),
        "sofa_cardio": cardio,
        "sofa_cns": _steps("gcs", [15, 13, 10, 6], [1, 2, 3, 4], below=True),
        "sofa_renal": _steps("creatinine", [1.2, 2.0, 3.5, 5.0], [1, 2, 3, 4], below=False),
    }


def add_sofa(wide: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """Add the six components and their sum ``sofa`` (missing components count 0, as usual)."""
    exprs = sofa_component_exprs()
    out = wide.with_columns(**exprs)
    return out.with_columns(
        pl.sum_horizontal([pl.col(c).fill_null(0) for c in SOFA_COMPONENTS]).cast(pl.Int8).alias("sofa")
    )
