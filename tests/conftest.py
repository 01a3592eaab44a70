"""Shared fixtures: the data dictionary, small simulated cohorts, one end-to-end workflow run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import make_workdir, run_snakemake  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def dictionary():
    return load_dictionary(ROOT / "config" / "variables.yaml")


@pytest.fixture(scope="session")
def sim_default():
    """The default simulated database (3,000 stays, default seed) as (cohort, timeseries, truth)."""
    return simulate(SimulationSettings(n_stays=3000), seed=20261128, database="simulated")


@pytest.fixture(scope="session")
def sim_small():
    """A small simulated database (600 stays) for fast unit tests."""
    return simulate(SimulationSettings(n_stays=600), seed=11, database="simulated")


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory):
    """One end-to-end run of the whole workflow on tests/configs/small.yaml; returns its folder."""
    wd = make_workdir(tmp_path_factory.mktemp("e2e"))
    run_snakemake(wd, "--cores", "2", "--configfile", "tests/configs/small.yaml")
    return wd
