"""The report: every registered file exists with a real caption; no identifier leaks into it."""

from __future__ import annotations

import glob
import re

import polars as pl
import pytest


@pytest.fixture(scope="module")
def registered(rule_dump):
    """(rule, output pattern) -> (caption file, category) of every file registered in the report."""
    return {(r["name"], o): tuple(c) for r in rule_dump["rules"] for o, c in r.get("captions", {}).items()}


def test_every_report_file_has_a_caption(registered):
    assert len(registered) >= 40
    for (rule, out), (caption, category) in registered.items():
        text = open(caption, encoding="utf-8").read().strip()
        assert len(text) > 80, f"{rule}: {out} has an empty or trivial caption {caption}"
        assert category in {"Data", "Analysis", "Target trial", "Clustering", "Supervised", "Transfer", "Summary"}, (rule, category)


@pytest.mark.slow
def test_every_report_file_exists_after_a_run(workflow_run, registered):
    for (rule, out), _ in registered.items():
        if rule in ("cluster_replication", "ingest_mimic_iv", "ingest_eicu", "ingest_contract", "concordance_mimic_code") or "download" in rule or rule.startswith("external_model"):
            continue  # need several analysed or real databases, or a fitted external model; covered by their own tests
        if rule == "supervised_selection":
            continue  # only with `features: selected` (tests/test_supervised.py covers the selection inside the folds)
        hits = glob.glob(str(workflow_run / re.sub(r"\{[^}]+\}", "*", out)))
        assert hits, f"{rule}: nothing matches {out}"


@pytest.mark.slow
def test_report_builds(report_html):
    html = report_html.read_text(errors="replace")
    assert len(html) > 10_000 and "cohort_summary" in html


@pytest.mark.slow
def test_no_identifier_in_report_logs_or_tables(workflow_run, report_html):
    """Disclosure control: stay and patient identifiers of the test cohort appear in no artefact a
    person reads (report, logs, CSV/HTML/JSON/RST/SVG tables and summaries)."""
    res = workflow_run / "results"
    assert report_html.is_file()
    ids = set()
    for db in ("simulated", "simulated_shift", "simulated_unrelated"):
        c = pl.read_parquet(res / db / "data" / "cohort.parquet")
        ids |= set(c["stay_id"].to_list()) | set(c["patient_id"].to_list())
    assert len(ids) > 1000
    scanned = 0
    for p in res.rglob("*"):
        if not p.is_file() or p.suffix in (".parquet", ".png") or p.name.startswith("."):
            continue
        text = p.read_text(errors="replace")
        leaked = set(re.findall(r"\d{6,}", text)) & ids
        assert not leaked, f"{p.relative_to(workflow_run)} contains {len(leaked)} identifier(s)"
        scanned += 1
    assert scanned > 100


def test_captions_have_no_unintended_rst_substitutions():
    """`|x|` in RST is a substitution reference; an undefined one puts a docutils error into the report."""
    from helpers import ROOT

    bad = []
    for p in sorted((ROOT / "workflow" / "report").glob("*.rst")):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"(?<![`\w])\|[A-Za-z][^|\n`]*\|(?![`\w])", line):
                bad.append(f"{p.name}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
