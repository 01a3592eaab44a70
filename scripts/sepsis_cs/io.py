"""Input/output helpers: atomic writers, guarded readers, the script runner.

Writers put data under a temporary name in the destination folder and rename it
into place, so an interrupted job never leaves a half-written output that looks
complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import polars as pl

from .errors import UserInputError

log = logging.getLogger("sepsis_cs")


# ----------------------------------------------------------------------------- atomic writes
@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # leftovers of a killed earlier attempt (SIGKILL skips clean-up) go first
    for stale in path.parent.glob(f".{path.name}.*"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write a Parquet file atomically, without timestamps or other run-dependent metadata."""
    with atomic_path(path, ".parquet") as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)


def write_csv(df: pl.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path, ".csv") as tmp:
        df.write_csv(tmp, float_precision=6)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, 6)
    return value


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write JSON atomically with sorted keys; NaN/inf become null, floats rounded to 1e-6."""
    write_text(json.dumps(_json_clean(data), indent=2, sort_keys=True) + "\n", path)


def savefig(fig, path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically; PNG or SVG by extension, no date metadata."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


# ----------------------------------------------------------------------------- guarded reads
def read_parquet(path: str | os.PathLike) -> pl.DataFrame:
    """Read a Parquet file or raise a one-line :class:`UserInputError`."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(path, None, "file does not exist")
    if path.stat().st_size == 0:
        raise UserInputError(path, None, "file is empty; expected a Parquet file")
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for corrupt files
        raise UserInputError(
            path, None, f"expected a readable Parquet file (truncated or corrupt: {type(exc).__name__})"
        ) from None


def read_table(path: str | os.PathLike) -> pl.DataFrame:
    """Read a Parquet, CSV or gzip-compressed CSV file (by extension) or raise a one-line error.

    CSV must be UTF-8 with a header row; empty fields are missing values.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        return read_parquet(path)
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        raise UserInputError(path, None, "expected a .parquet, .csv or .csv.gz file")
    if not path.exists():
        raise UserInputError(path, None, "file does not exist")
    if path.stat().st_size == 0:
        raise UserInputError(path, None, "file is empty; expected a header row and data")
    try:
        raw = path.read_bytes()
        if name.endswith(".gz"):
            import gzip

            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise UserInputError(path, None, f"expected a complete gzip file (truncated or corrupt: {type(exc).__name__})") from None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(path, None, f"expected UTF-8 text, found an invalid byte at position {exc.start}") from None
    try:
        return pl.read_csv(raw, infer_schema_length=10000, null_values=["", "NA", "NaN"])
    except Exception as exc:  # noqa: BLE001 - polars raises several parse errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(path, None, f"expected a well-formed CSV table ({first[:120]})") from None


def read_yaml(path: str | os.PathLike, what: str):
    """Parse a YAML file or raise a one-line :class:`ConfigError` (missing, not UTF-8, not YAML)."""
    import yaml

    from .errors import ConfigError

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, f"{what} file does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"expected valid UTF-8 YAML ({exc.__class__.__name__})") from None


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(path, None, "file does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(path, None, f"expected valid UTF-8 JSON ({exc.__class__.__name__})") from None


# ----------------------------------------------------------------------------- script runner
def _remove_outputs(outputs) -> None:
    for out in outputs:
        p = Path(out)
        if p.is_file():
            p.unlink()


def run_script(main: Callable[[Any], None], smk: Any) -> None:
    """Run ``main(snakemake)`` with logging to the rule's log file.

    A :class:`UserInputError` becomes one line on stderr and in the log, the rule's
    outputs are removed, and the process exits with status 1.  Any other exception is
    written with its traceback to the log only; the terminal gets one line pointing there.
    """
    log_path = smk.log[0] if len(smk.log) else None
    handlers: list[logging.Handler] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True)
    # libraries' warnings go to the log, not the terminal
    logging.captureWarnings(True)

    def _terminate(signum, frame):  # SIGTERM from Snakemake or a scheduler: unwind so temp files are removed
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        main(smk)
    except UserInputError as exc:
        msg = f"ERROR in rule {smk.rule}: {exc.one_line()}"
        log.error(msg)
        _remove_outputs(smk.output)
        print(msg, file=sys.__stderr__, flush=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - last-resort guard: traceback to log only
        log.error("internal error\n%s", traceback.format_exc())
        _remove_outputs(smk.output)
        where = f" (traceback in {log_path})" if log_path else ""
        print(f"ERROR in rule {smk.rule}: internal error {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}", file=sys.__stderr__, flush=True)
        sys.exit(1)


# ----------------------------------------------------------------------------- disclosure control
def suppress_count(n: int | None, min_cell_count: int) -> int | None:
    """Return ``n`` or ``None`` when ``0 < n < min_cell_count`` (small-cell suppression)."""
    if n is None:
        return None
    n = int(n)
    if 0 < n < min_cell_count:
        return None
    return n


def format_count(n: int | None, min_cell_count: int) -> str:
    """Count as text, ``"<k"`` when suppressed."""
    if n is None:
        return "NA"
    n = int(n)
    if 0 < n < min_cell_count:
        return f"<{min_cell_count}"
    return str(n)
