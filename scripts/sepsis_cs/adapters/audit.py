"""What an adapter reads: the raw tables it scans, how many times, and which columns (issue 16).

:func:`recorded_scans` replaces an adapter module's ``scan`` (``mimic_iv.scan``, ``eicu.scan``) by a
polars IO source that wraps the original scan: the query optimiser hands the source the columns it
projects and the predicate it pushes down, and every *execution* of a scan node calls the source once.
So, after running the adapter inside the block,

- :func:`scan_counts` says how many times each raw table was read (a table read by several lazy plans,
  or by several branches of one plan that the optimiser did not merge, counts several times: at full
  size each read is a pass over a file of up to ~400 M rows);
- :func:`columns_read` says which columns of each table the adapter needs (after projection pushdown),
  the list a synthetic database must fill (``benchmarks/full_scale.py`` checks it).

The wrapped scans give the same rows as the original ones (same plan, read eagerly inside the source):
use it on small data only.  Python IO sources are not merged by the optimiser's common-subplan
elimination, so they run once per *reference*: to count the passes the real plans make over each file,
use :func:`recorded_plans` and :func:`plan_scan_counts` (the optimised plans, cached subplans counted once).
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from polars.io.plugins import register_io_source


@dataclass(frozen=True)
class ScanRecord:
    table: str
    columns: tuple[str, ...]  # projected columns (all columns when the plan needs them all)
    filtered: bool  # a predicate was pushed into the scan


@contextmanager
def recorded_scans(module):
    """Within the block, ``module.scan(root, table)`` records every execution; yields the list of :class:`ScanRecord`."""
    original = module.scan
    records: list[ScanRecord] = []

    def scan(root, table: str) -> pl.LazyFrame:
        lf = original(root, table)
        schema = lf.collect_schema()

        def source(with_columns, predicate, n_rows, batch_size):
            cols = list(with_columns) if with_columns is not None else list(schema.names())
            records.append(ScanRecord(table, tuple(cols), predicate is not None))
            out = original(root, table).select(cols)
            if predicate is not None:
                out = out.filter(predicate)
            if n_rows is not None:
                out = out.head(n_rows)
            yield out.collect()

        return register_io_source(source, schema=schema)

    module.scan = scan
    try:
        yield records
    finally:
        module.scan = original


def scan_counts(records: list[ScanRecord]) -> dict[str, int]:
    """Executions of a scan per table."""
    return dict(sorted(Counter(r.table for r in records).items()))


def columns_read(records: list[ScanRecord]) -> dict[str, set[str]]:
    """Columns of each table the adapter's plans project (union over its scans)."""
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r.table, set()).update(r.columns)
    return out


def filled_columns(path: str | Path) -> set[str]:
    """Columns of a raw table file holding at least one value (small files only: read whole)."""
    p = Path(path)
    df = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p, infer_schema=False)
    if df.height == 0:
        return set()
    row = df.select(pl.all().is_not_null().any()).row(0, named=True)
    return {c for c, ok in row.items() if ok}


def unfilled_reads(read: dict[str, set[str]], path_of, root) -> list[str]:
    """One line per table column the adapter reads that the files under ``root`` leave empty or lack.

    ``path_of(root, table)``: the adapter's ``table_path``.
    """
    problems = []
    for table, cols in sorted(read.items()):
        p = path_of(root, table)
        have = filled_columns(p) if p is not None else set()
        for c in sorted(cols - have):
            problems.append(f"{p if p is not None else table}: column {c!r} is read by the adapter but has no value in the generated data")
    return problems


@contextmanager
def recorded_plans():
    """Within the block, every ``LazyFrame.collect`` first records its optimised plan (``explain()``); yields the list."""
    original = pl.LazyFrame.collect
    plans: list[str] = []

    def collect(self, *args, **kwargs):
        plans.append(self.explain())
        return original(self, *args, **kwargs)

    pl.LazyFrame.collect = collect
    try:
        yield plans
    finally:
        pl.LazyFrame.collect = original


_SCAN = re.compile(r"(?:Csv|Parquet|Ipc|NDJson|Json) SCAN \[([^\]]+)\]")


def plan_scan_counts(plans: list[str]) -> dict[str, int]:
    """Scan nodes per raw table (file name without extensions) over the recorded optimised plans.

    A subplan the optimiser caches (``CACHE``) is printed, and read, once; every other scan node is a
    separate pass over its file.
    """
    c = Counter(Path(m.group(1)).name.split(".")[0] for p in plans for m in _SCAN.finditer(p))
    return dict(sorted(c.items()))
