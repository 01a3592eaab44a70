"""Disclosure control of attrition tables and ingest statistics."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsis_cs.adapters.common import public_stats, suppress_attrition


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.lists(st.integers(0, 40), min_size=1, max_size=7))
def test_attrition_never_shows_or_reveals_a_small_count(start, exclusions):
    n, rows = start + sum(exclusions), []
    for i, e in enumerate([0, *exclusions]):
        n -= e
        rows.append({"step": f"s{i}", "n_stays": n, "n_excluded": e, "note": ""})
    shown = suppress_attrition(pl.DataFrame(rows), 10)
    stays = [int(x) for x in shown["n_stays"] if x.isdigit()]
    for col in ("n_stays", "n_excluded"):
        assert all(not x.isdigit() or int(x) == 0 or int(x) >= 10 for x in shown[col])
    # differences between consecutive shown stay counts are 0 or at least 10
    assert all(a - b == 0 or a - b >= 10 for a, b in zip(stays, stays[1:]))


def test_stats_equal_to_hidden_steps_are_withheld():
    att = pl.DataFrame({"step": ["all", "sepsis", "final"], "n_stays": [500, 125, 122], "n_excluded": [0, 375, 3], "note": [""] * 3})
    out = public_stats({"n_icu_stays_raw": 500, "n_sepsis": 125, "n_small": 4, "ingest_seconds": 1.5}, 10, att)
    assert out == {"n_icu_stays_raw": 500, "n_sepsis": None, "n_small": None, "ingest_seconds": 1.5}
