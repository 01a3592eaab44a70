"""Shared fixtures: the test configuration, the data dictionary, simulated cohorts and their stay features
(built once per session), and the session's one end-to-end workflow run, report and rule dump.

The end-to-end run starts in the background as soon as collection ends (only if a selected test needs it), so
the unit tests run while it works; under pytest-xdist one worker starts it and every worker waits for the same
run. See docs/development.md for the layout and the markers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from analysis_data import default_features as _default_features  # noqa: E402
from analysis_data import simulated  # noqa: E402
from helpers import E2E_CONFIG, dump_rules, make_workdir, unit_config  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from shared import BackgroundRun, once, shared_dir  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"

# the session's end-to-end run of the whole workflow on tests/configs/small.yaml, then its report
E2E = BackgroundRun(
    "e2e",
    ("--cores", "2", *E2E_CONFIG),
    then={"report": (*E2E_CONFIG, "--report", "results/report.html")},
)


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin
def pytest_configure(config):
    shared_dir(config)  # every process (controller, workers) knows the shared folder


# tests that read the session's end-to-end run; they run last, so that the run has the unit tests' time to finish
E2E_FIXTURES = {"workflow_run", "report_html"}
# a test using one of these is `slow`, marked or not: the end-to-end run, and the full-size (3,000-stay)
# simulated database on which the methods' claims are checked (so `-m "not slow"` never builds them)
SLOW_FIXTURES = E2E_FIXTURES | {"sim_default", "default_features"}


@pytest.hookimpl(tryfirst=True)  # before -m deselection
def pytest_collection_modifyitems(config, items):
    e2e, rest = [], []
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & used:
            item.add_marker(pytest.mark.slow)
        (e2e if E2E_FIXTURES & used else rest).append(item)
    items[:] = rest + e2e
    if hasattr(config, "workerinput"):  # tell the xdist controller's scheduler (below) which tests read the run
        target = shared_dir(config) / "e2e_tests.json"
        tmp = target.with_name(f"e2e_tests.{config.workerinput['workerid']}.tmp")
        tmp.write_text(json.dumps([i.nodeid for i in e2e]))
        tmp.replace(target)


def pytest_xdist_make_scheduler(config, log):
    """xdist scheduling by file (a module fixture is built once), except that each test reading the end-to-end run
    is a unit of its own, so that both workers share them once the run is there. (xdist's own `loadgroup` does
    not group under pytest 9, hence this.)"""
    from xdist.scheduler import LoadScopeScheduling

    e2e_file = shared_dir(config) / "e2e_tests.json"

    class FileOrE2EScheduling(LoadScopeScheduling):
        _e2e: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._e2e is None:
                self._e2e = set(json.loads(e2e_file.read_text())) if e2e_file.exists() else set()
            return nodeid if nodeid in self._e2e else nodeid.split("::", 1)[0]

        def _reschedule(self, node) -> None:
            # a worker gets its next unit only when it is down to its last test (xdist keeps up to 3 tests queued):
            # a worker busy with a long end-to-end test (a kill/resume trial) must not hold the next ones. Not 0: an
            # xdist worker runs a test only once it knows the next one (or is told to shut down), so a worker left
            # with one pending test waits for work forever (the deadlock that stopped CI after 57 tests)
            if node.shutting_down or (self.workqueue and self._pending_of(self.assigned_work[node]) > 1):
                return
            super()._reschedule(node)

    return FileOrE2EScheduling(config, log)


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    if any("workflow_run" in getattr(item, "fixturenames", ()) for item in session.items):
        E2E.start(session.config)


def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):  # the controller (xdist) or the only process
        E2E.stop(session.config)


@pytest.fixture(scope="session")
def dictionary():
    return load_dictionary(ROOT / "config" / "variables.yaml")


@pytest.fixture(scope="session")
def concepts():
    """The concept dictionary of the database adapters (config/concepts.yaml)."""
    from sepsis_cs.adapters.common import load_concepts

    return load_concepts(ROOT / "config" / "concepts.yaml")


@pytest.fixture(scope="module")
def base_config():
    """The settings of the unit tests (tests/configs/unit.yaml over config/config.yaml), a fresh copy per module."""
    return unit_config()


@pytest.fixture(scope="session")
def sim_default():
    """The default simulated database (3,000 stays, default seed) as (cohort, timeseries, truth)."""
    return simulated(3000, 20261128)


@pytest.fixture(scope="session")
def sim_small():
    """A small simulated database (600 stays) for fast unit tests."""
    return simulated(600, 11)


@pytest.fixture(scope="session")
def default_features():
    """Stay features of ``sim_default`` (windows -24..0 and 0..24 h, every statistic)."""
    return _default_features(3000, 20261128)


@pytest.fixture(scope="session")
def small_features():
    """Stay features of ``sim_small`` (windows -24..0 and 0..24 h, every statistic)."""
    return _default_features(600, 11)


@pytest.fixture(scope="session")
def workflow_run(request):
    """The session's finished end-to-end run (tests/configs/small.yaml); returns its folder. Read only:
    a test that changes files copies what it needs (see test_interrupts.seeded_workdir)."""
    return E2E.wait(request.config)


@pytest.fixture(scope="session")
def report_html(request, workflow_run):
    """``snakemake --report`` of the session's run (built once, after the run); returns the HTML file."""
    return E2E.wait(request.config, "report") / "results" / "report.html"


@pytest.fixture(scope="session")
def rule_dump(request):
    """Every rule of the workflow (default config), loaded once per session through the Snakemake API:
    name, action, script, conda env, resources, benchmark, log, params, outputs and report captions."""
    folder = shared_dir(request.config)

    def build():
        return dump_rules(make_workdir(folder / "rules_wd"))

    return once(folder, "rules", build)
