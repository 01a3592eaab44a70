"""End-to-end: the workflow runs on the small test config and writes the headline numbers.

The session's run is shared (conftest.workflow_run); the report is built once and checked in
test_report.py, partial reruns in test_reruns.py, bad configurations in test_bad_inputs.py.
"""

import json

import polars as pl
import pytest

from helpers import E2E_CONFIG, run_snakemake

pytestmark = pytest.mark.slow


def test_cohort_summary_headline(workflow_run):
    s = json.loads((workflow_run / "results/simulated/summary/cohort.json").read_text())
    for key in ("n_stays", "n_cs", "n_no_cs", "mortality_cs", "mortality_no_cs"):
        assert key in s
    assert s["n_stays"] == 800 and s["n_cs"] + s["n_no_cs"] == 800
    cohort = pl.read_parquet(workflow_run / "results/simulated/data/cohort.parquet")
    assert s["n_cs"] == int(cohort["cs"].sum())
    assert abs(s["mortality_cs"] - cohort.filter(pl.col("cs"))["hospital_mortality"].mean()) < 1e-6


def test_noop_rerun_schedules_nothing(workflow_run):
    proc = run_snakemake(workflow_run, "--cores", "2", *E2E_CONFIG, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
