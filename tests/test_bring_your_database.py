"""docs/bring-your-database.md runs as written: the Python and R worked examples need one check,
one mapping edit, and pass; the figures the page quotes are the ones the check prints.

The R example runs when ``Rscript`` is installed (``apt-get install --no-install-recommends r-base-core``);
otherwise it is only checked for balanced brackets and quotes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

DOC = ROOT / "docs" / "bring-your-database.md"
CHECK = ROOT / "scripts" / "check_contract.py"


def block(name: str) -> str:
    """The fenced code block that follows ``<!-- example:<name> -->`` in the page."""
    m = re.search(r"<!-- example:" + re.escape(name) + r" -->\s*```\w*\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert m, name
    return m.group(1)


def check(cwd, *args):
    return subprocess.run([sys.executable, str(CHECK), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def _rounds(tmp_path, export_cmd, name, cohort, ts):
    """Run the export, the first check, the page's mapping, the second check; return both outputs."""
    subprocess.run(export_cmd, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    first = check(tmp_path, "--cohort", cohort, "--timeseries", ts, "--suggest", "suggested.yaml")
    assert first.returncode == 1 and "Traceback" not in first.stdout + first.stderr
    (tmp_path / f"{name}.yaml").write_text(block(f"{'python' if name == 'hospital_x' else 'r'}-mapping"))
    second = check(tmp_path, "--config", f"{name}.yaml", "--database", name)
    assert second.returncode == 0, second.stdout[-3000:]
    return first.stdout, second.stdout


def test_python_example_one_check_one_edit_pass(tmp_path):
    (tmp_path / "export_contract.py").write_text(block("python"))
    first, second = _rounds(tmp_path, [sys.executable, "export_contract.py"], "hospital_x", "hospital_x/cohort.parquet", "hospital_x/timeseries.csv")
    errors = [ln for ln in first.splitlines() if ln.startswith("ERROR")]
    for words in ("'time_zero'", "methylprednisolone+prednisone", "'EMERGENCY'", "'apache_ii'", "'charlson'", "'bmi'", "'smoker'",
                  "'ward'", "'etco2'", "'fio2'", "'spo2'", "degF_to_degC"):
        assert sum(words in ln for ln in errors) == 1, (words, first)
    assert "__index_level_0__" in first
    doc = DOC.read_text(encoding="utf-8")
    failed = re.search(r"FAILED: \d+ problems to fix", first).group(0)
    passed = re.search(r"PASSED: \d+ stays and \d+ hourly values", second).group(0)
    assert f"FAILED: {len(errors)} problems" in failed and failed in doc and passed in doc, (failed, passed)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed (apt-get install --no-install-recommends r-base-core)")
def test_r_example_one_check_one_edit_pass(tmp_path):
    (tmp_path / "export_contract.R").write_text(block("r"))
    first, second = _rounds(tmp_path, ["Rscript", "export_contract.R"], "trial_y", "trial_y/cohort.csv", "trial_y/timeseries.csv")
    errors = [ln for ln in first.splitlines() if ln.startswith("ERROR")]
    doc = DOC.read_text(encoding="utf-8")
    for ln in errors:  # the page shows every error line (shortened only inside parentheses)
        column = re.search(r"column '[a-z0-9_]+'", ln).group(0)
        assert any(column in d and d.startswith(ln.split(":")[0]) for d in doc.splitlines() if d.startswith("ERROR")), ln
    passed = re.search(r"PASSED: .*warnings\)", second).group(0)
    assert passed in doc, passed


def test_r_example_is_well_formed():
    """Without R: brackets and quotes of the R block balance (a parser-level sanity check)."""
    code = re.sub(r"#[^\n]*", "", re.sub(r'"[^"\n]*"', '""', block("r")))
    assert code.count('"') % 2 == 0
    for a, b in ("()", "[]", "{}"):
        assert code.count(a) == code.count(b), a
    assert "write.csv" in code and "row.names = FALSE" in block("r")
