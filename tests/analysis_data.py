"""Simulated cohorts and their stay features, built once per test session (shared by every xdist worker
through Parquet files, see shared.cached_frames), and helpers of the phase 1-2 tests."""

from __future__ import annotations

import os

# One OpenMP thread with passive waiting, as in the workflow's threads=1 jobs: on a busy machine,
# spinning OpenMP workers make boosting 5-10x slower. Effective only if OpenMP is not loaded yet
# (conftest imports this module first).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402

from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from sepsis_cs.features import stay_features  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402
from shared import cached_frames  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = [(-24, 0), (0, 24)]


@lru_cache(maxsize=8)
def simulated(n_stays: int, seed: int, database: str = "simulated", **settings) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(cohort, timeseries, truth) of ``simulate(SimulationSettings(n_stays, **settings), seed, database)``, once per session."""
    key = "_".join(["sim", str(n_stays), str(seed), database, *(f"{k}-{v}" for k, v in sorted(settings.items()))])
    return cached_frames(key, 3, lambda: simulate(SimulationSettings(n_stays=n_stays, **settings), seed=seed, database=database))


@lru_cache(maxsize=8)
def default_features(n_stays: int, seed: int, database: str = "simulated", **settings) -> pl.DataFrame:
    """Stay features (windows -24..0 and 0..24 h, every statistic) of :func:`simulated`, once per session."""
    key = "_".join(["feats", str(n_stays), str(seed), database, *(f"{k}-{v}" for k, v in sorted(settings.items()))])

    def build():
        cohort, ts, _ = simulated(n_stays, seed, database, **settings)
        return (stay_features(cohort, ts, load_dictionary(ROOT / "config" / "variables.yaml"), WINDOWS),)

    return cached_frames(key, 1, build)[0]


def surrogates(name: str) -> set[str]:
    """A static covariate and the hourly variable that measures the same thing."""
    family = {
        "sofa_t0": "sofa",
        "lactate_t0": "lactate",
        "gcs_t0": "gcs",
        "map_t0": "map",
        "vasopressor_t0": "norepinephrine_eq",
    }
    return {name} | ({family[name]} if name in family else set())


def family_of(feature: str) -> str:
    return feature.split("__")[0]


def best_rank(table, name: str) -> int:
    """Best consensus rank of ``name`` or of a feature of its surrogate hourly variable (SOFA components count for SOFA)."""
    fams = surrogates(name)
    hits = table[[f in fams or family_of(f) in fams or (name == "vasopressor_t0" and family_of(f) == "sofa_cardio")
                  or (name == "sofa_t0" and family_of(f).startswith("sofa")) for f in table["feature"]]]
    return int(hits["consensus_rank"].min()) if len(hits) else 10**6


def pl_frame(df) -> pl.DataFrame:
    return df if isinstance(df, pl.DataFrame) else pl.from_pandas(df)
