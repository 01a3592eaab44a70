"""Bad inputs through the real workflow: one-line errors, no traceback, no partial output.

The corpus (tests/bad_corpus.py) is written to a temporary folder; every case is declared as a
database of type ``contract`` and all are run in one ``snakemake --keep-going`` call, so each
failing job is observed as a user would see it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest
import yaml

from bad_corpus import write_corpus
from helpers import make_workdir, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    cases = write_corpus(base / "corpus")
    wd = make_workdir(base / "wd")
    dbs = {
        c.name: {
            "type": "contract",
            "analyse": False,
            "cohort": str(base / "corpus" / c.name / f"cohort.{c.fmt}"),
            "timeseries": str(base / "corpus" / c.name / f"timeseries.{c.fmt}"),
        }
        for c in cases
    }
    (wd / "bad.yaml").write_text(yaml.safe_dump({"databases": dbs}))
    targets = [f"results/{c.name}/data/cohort.parquet" for c in cases]
    proc = run_snakemake(wd, *targets, "--cores", "2", "--keep-going", "--configfile", "bad.yaml", check=False, timeout=600)
    return cases, wd, base, proc


def test_corpus_is_large_enough(corpus_run):
    cases, *_ = corpus_run
    assert len(cases) >= 30


def test_no_traceback_reaches_the_user(corpus_run):
    *_, proc = corpus_run
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode != 0  # some jobs failed, as they must


def test_each_bad_input_gives_one_line_naming_file_and_column(corpus_run):
    cases, wd, base, proc = corpus_run
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR in rule")]
    clean = 0
    for case in cases:
        if case.rule is None:
            continue
        mine = [ln for ln in err_lines if f"/corpus/{case.name}/" in ln]
        # every problem in one pass, one line each; a single defect gives a single line (no cascade)
        assert len(mine) == case.lines, (case.name, mine, proc.stderr[-3000:])
        for ln in mine:
            assert ln.startswith(f"ERROR in rule {case.rule}:"), (case.name, ln)
            assert re.search(r"/corpus/" + case.name + r"/(cohort|timeseries)\.", ln)
        column = f"column '{case.column}'" if case.column is not None else ""
        assert any(case.words in ln and column in ln for ln in mine), (case.name, mine)
        clean += 1
    assert clean >= 30


def test_failed_jobs_leave_no_output(corpus_run):
    cases, wd, *_ = corpus_run
    for case in cases:
        validated = wd / "results" / case.name / "data" / "cohort.parquet"
        if case.rule is None:
            assert validated.exists(), case.name
        else:
            assert not validated.exists(), case.name
            assert not (wd / "results" / case.name / "data" / "timeseries.parquet").exists()
        if case.rule == "ingest_contract":
            assert not (wd / "results" / case.name / "ingest" / "cohort.parquet").exists(), case.name


def test_failed_validation_lists_every_problem_in_a_table(corpus_run):
    cases, wd, *_ = corpus_run
    for case in cases:
        if case.rule != "validate_cohort":
            continue
        table = pl.read_csv(wd / "results" / case.name / "data" / "validation_problems.csv")
        errors = table.filter(pl.col("severity") == "error")
        assert errors.height == case.lines, case.name
        assert any(case.words in e for e in errors["expected"]), case.name


def test_warnings_of_valid_inputs_are_reported(corpus_run):
    cases, wd, _, proc = corpus_run
    for case in cases:
        if case.rule is None and case.words in ("pandas index", "no hourly values"):
            changes = pl.read_csv(wd / "results" / case.name / "data" / "validation_changes.csv")
            assert any(case.words in c for c in changes["check"]), case.name
            assert any(case.words in ln and f"[{case.name}]" in ln for ln in proc.stderr.splitlines()), case.name


def test_repairs_are_counted(corpus_run):
    _, wd, *_ = corpus_run
    map_changes = pl.read_csv(wd / "results/map_900/data/validation_changes.csv")
    assert map_changes.filter(pl.col("column") == "map")["n"].sum() > 0
    age_changes = pl.read_csv(wd / "results/age_minus_3/data/validation_changes.csv")
    assert age_changes.filter(pl.col("column") == "age")["n"].to_list() == [3]


BAD_CONFIGS = [
    ("seed: 1\nfavourite_colour: blue\n", "favourite_colour"),
    ("seed: many\n", "key 'seed'"),
    ("min_cell_count: -1\n", "key 'min_cell_count'"),
    ("databases: {mydb: {type: contract, cohort: /nonexistent/c.parquet, timeseries: /nonexistent/t.parquet}}\n", "does not exist"),
    ("databases: {mimic: {type: mimic_iv, path: /nonexistent/mimic}}\n", "databases.mimic.path"),
    ("databases: {Bad-Name: {type: simulated}}\n", "Bad-Name"),
    ("databases: {simulated: {type: simulated, n_stays: lots}}\n", "databases.simulated.n_stays"),
]

# Loads the workflow through the Snakemake API once per bad configuration, all in one process: the config
# checks of workflow/rules/common.smk stop the load with SystemExit("ERROR config: ..."), the message the
# command line prints. Any other exception would reach the user as a traceback.
CHECK_CONFIGS = r"""
import json, sys, traceback
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

out = []
for path in sys.argv[1:]:
    try:
        with SnakemakeApi(OutputSettings()) as api:
            api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(configfiles=[Path(path)]),
                         storage_settings=StorageSettings(), snakefile=Path("Snakefile"), workdir=Path.cwd())._workflow
        out.append({"exit": None, "error": None})
    except SystemExit as e:
        out.append({"exit": str(e.code), "error": None})
    except BaseException:
        out.append({"exit": None, "error": traceback.format_exc()[-3000:]})
print("RESULTS=" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def config_checks(tmp_path_factory):
    """config text -> what loading the workflow with it gave ({exit: message or None, error: traceback or None})."""
    wd = make_workdir(tmp_path_factory.mktemp("bad_config"))
    paths = []
    for i, (text, _) in enumerate(BAD_CONFIGS):
        (wd / f"bad{i}.yaml").write_text(text)
        paths.append(f"bad{i}.yaml")
    proc = subprocess.run([sys.executable, "-c", CHECK_CONFIGS, *paths], cwd=wd, capture_output=True, text=True, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS=")), None)
    assert line, proc.stderr[-4000:]
    return {text: r for (text, _), r in zip(BAD_CONFIGS, json.loads(line.removeprefix("RESULTS=")), strict=True)}


@pytest.mark.parametrize("config_text, words", BAD_CONFIGS)
def test_bad_config_is_one_line(config_checks, config_text, words):
    result = config_checks[config_text]
    assert result["error"] is None, result["error"]
    assert result["exit"] is not None, "the workflow accepted the configuration"
    lines = [ln for ln in result["exit"].splitlines() if ln.startswith("ERROR config")]
    assert len(lines) == 1 and words in lines[0], result["exit"]


def test_bad_config_is_one_line_end_to_end(tmp_path):
    """The same through the command line, as a user sees it: exit status, no traceback, one line."""
    text, words = BAD_CONFIGS[0]
    wd = make_workdir(tmp_path / "wd")
    (wd / "bad.yaml").write_text(text)
    proc = run_snakemake(wd, "-n", "--configfile", "bad.yaml", check=False)
    err = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("ERROR config")]
    assert len(lines) == 1 and words in lines[0], err[-2000:]


def test_bad_dictionary_is_one_line(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    (wd / "config" / "variables.yaml").write_bytes("variables:\n  age: {label: \xc2ge}\n".encode("latin-1"))
    proc = run_snakemake(wd, "results/simulated/data/cohort.parquet", "--cores", "1", "--configfile", "tests/configs/small.yaml", check=False)
    err = proc.stderr
    assert proc.returncode != 0 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("ERROR in rule validate_cohort")]
    assert len(lines) == 1 and "variables.yaml" in lines[0] and "UTF-8" in lines[0]
