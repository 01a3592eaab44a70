"""End-to-end: the workflow runs on a small config, writes the headline numbers and a report."""

import json

import polars as pl
import pytest

from helpers import run_snakemake

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
    proc = run_snakemake(workflow_run, "--cores", "2", "--configfile", "tests/configs/small.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_forcerun_reruns_only_downstream(workflow_run):
    proc = run_snakemake(
        workflow_run, "--cores", "2", "--configfile", "tests/configs/small.yaml", "-n", "--forcerun", "cohort_summary", "--quiet", "rules"
    )
    out = proc.stdout + proc.stderr
    assert "cohort_summary" in out
    for upstream in ("simulate_cohort", "validate_cohort", "data_dictionary"):
        assert upstream not in out


def test_report_builds(workflow_run):
    run_snakemake(workflow_run, "--configfile", "tests/configs/small.yaml", "--report", "results/report.html")
    html = (workflow_run / "results/report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "cohort_summary" in html


def test_bad_config_is_one_line(workflow_run, tmp_path):
    bad = workflow_run / "tests/configs/bad_key.yaml"
    bad.write_text("seed: 1\nfavourite_colour: blue\ndatabases: {simulated: {type: simulated}}\n")
    proc = run_snakemake(workflow_run, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "Traceback" not in err
    assert "favourite_colour" in err
