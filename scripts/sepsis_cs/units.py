"""Named unit conversions into the contract's units (config ``databases.<name>.mapping.units``).

Each conversion is ``y = (x + offset) * factor`` into the unit of the data dictionary
(``config/variables.yaml``).  Analyte-specific conversions (molar mass) name the variables they
may be applied to, so that the creatinine factor is never used on bilirubin.  The registry is the
single list of names: the config schema's enum is checked against it by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Conversion:
    name: str
    from_unit: str
    to_unit: str
    factor: float
    offset: float = 0.0
    #: variables (or core columns) the conversion applies to; None = any variable in ``to_unit``
    variables: tuple[str, ...] | None = None

    def expr(self, x: pl.Expr) -> pl.Expr:
        return (x + self.offset) * self.factor if self.offset else x * self.factor

    def apply(self, values):
        return (values + self.offset) * self.factor

    def fits(self, variable: str, unit: str) -> bool:
        """Whether the conversion gives ``unit`` and may be applied to ``variable``."""
        return same_unit(self.to_unit, unit) and (self.variables is None or variable in self.variables)


def same_unit(a: str, b: str) -> bool:
    norm = lambda u: (u or "").replace("°", "deg").replace("µ", "u").replace(" ", "").lower()
    return norm(a) == norm(b)


_REGISTRY = [
    Conversion("degF_to_degC", "degF", "degC", 5 / 9, offset=-32.0),
    Conversion("creatinine_umol_l_to_mg_dl", "umol/L", "mg/dL", 1 / 88.42, variables=("creatinine",)),
    Conversion("bilirubin_umol_l_to_mg_dl", "umol/L", "mg/dL", 1 / 17.104, variables=("bilirubin",)),
    Conversion("glucose_mmol_l_to_mg_dl", "mmol/L", "mg/dL", 18.016, variables=("glucose",)),
    Conversion("lactate_mg_dl_to_mmol_l", "mg/dL", "mmol/L", 1 / 9.008, variables=("lactate", "lactate_t0")),
    Conversion("crp_mg_dl_to_mg_l", "mg/dL", "mg/L", 10.0, variables=("crp",)),
    Conversion("kpa_to_mmhg", "kPa", "mmHg", 7.50062),
    Conversion("lb_to_kg", "lb", "kg", 0.45359237),
    Conversion("g_to_kg", "g", "kg", 0.001),
    Conversion("minutes_to_hours", "min", "h", 1 / 60),
    Conversion("days_to_hours", "days", "h", 24.0),
    Conversion("hours_to_days", "h", "days", 1 / 24),
]
CONVERSIONS: dict[str, Conversion] = {c.name: c for c in _REGISTRY}

#: units of the numeric core and event-time columns of the cohort (the dictionary holds the others)
CORE_UNITS = {
    "cs_start_h": "h",
    "cs_hydrocortisone_eq_mg_24h": "mg",
    "icu_los_days": "days",
    "cs_first_h": "h",
    "death_h": "h",
    "icu_discharge_h": "h",
    "hospital_discharge_h": "h",
    "followup_end_h": "h",
}


def candidates(variable: str, unit: str) -> list[Conversion]:
    """Conversions that give ``unit`` and may be applied to ``variable``."""
    return [c for c in _REGISTRY if c.fits(variable, unit)]


def suggest(values: pl.Series, variable: str, unit: str, lo: float, hi: float, max_share: float) -> Conversion | None:
    """The conversion that brings most ``values`` into ``[lo, hi]``, if it leaves at most ``max_share`` outside."""
    v = values.drop_nulls().cast(pl.Float64)
    v = v.filter(v.is_finite())
    if not len(v):
        return None
    best, best_share = None, 1.0
    for conv in candidates(variable, unit):
        y = conv.apply(v)
        share = float(((y < lo) | (y > hi)).mean())
        if share < best_share:
            best, best_share = conv, share
    return best if best is not None and best_share <= max_share else None
