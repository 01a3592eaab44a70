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
def _sniff(head: bytes) -> str:
    """What a file that should be Parquet looks like from its first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "a gzip-compressed file, not Parquet (a compressed CSV is named .csv.gz)"
    if head[:4] == b"PK\x03\x04":
        return "a ZIP archive (an Excel .xlsx?), not Parquet: export the sheet as CSV"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    if text and sum(ch.isprintable() or ch in "\r\n\t" for ch in text) / len(text) > 0.95:
        sep = max(",;\t|", key=text.count)
        kind = "CSV" if text.count(sep) else "text"
        return f"a {kind} text file named .parquet (Parquet files start with PAR1): rename it .csv"
    return "not a Parquet file (Parquet files start with PAR1)"


def _invalid_utf8_column(path: Path) -> str | None:
    """The first text column of a Parquet file whose data are not valid UTF-8 (polars refuses them)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for name in table.column_names:
            col = table[name]
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                try:
                    col.validate(full=True)
                except pa.ArrowInvalid:
                    return name
    except Exception:  # noqa: BLE001 - diagnosis only
        return None
    return None


def read_parquet(path: str | os.PathLike) -> pl.DataFrame:
    """Read a Parquet file or raise a one-line :class:`UserInputError` giving the reader's reason."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(path, None, "file does not exist")
    size = path.stat().st_size
    if size == 0:
        raise UserInputError(path, None, "file is empty; expected a Parquet file")
    with open(path, "rb") as fh:
        head = fh.read(4096)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if head[:4] != b"PAR1":
        raise UserInputError(path, None, f"expected a Parquet file; this is {_sniff(head)}")
    if tail != b"PAR1":
        raise UserInputError(path, None, "expected a complete Parquet file; it is truncated (the footer is missing): copy or export it again")
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for corrupt files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        if "utf-8" in reason.lower() or "utf8" in reason.lower():
            col = _invalid_utf8_column(path)
            if col is not None:
                raise UserInputError(path, col, f"expected UTF-8 text, the reader says: {reason}; re-export the column as UTF-8 text") from None
        raise UserInputError(path, None, f"expected a readable Parquet file (truncated or corrupt; the reader says: {type(exc).__name__}: {reason})") from None


def _csv_position(raw: bytes, pos: int, separator: str) -> tuple[int, str | None]:
    """Line number (1-based) and header name of the field holding byte ``pos`` of a CSV text."""
    line_start = raw.rfind(b"\n", 0, pos) + 1
    line_no = raw.count(b"\n", 0, pos) + 1
    header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r").split(separator)
    field_no = raw[line_start:pos].count(separator.encode())
    return line_no, header[field_no].strip('"') if field_no < len(header) else None


def read_table(path: str | os.PathLike, encoding: str = "utf-8", separator: str = ",", decimal_comma: bool = False) -> pl.DataFrame:
    """Read a Parquet, CSV or gzip-compressed CSV file (by extension) or raise a one-line error.

    CSV must have a header row; empty fields, ``NA`` and ``NaN`` are missing values.  ``encoding``,
    ``separator`` and ``decimal_comma`` (config ``databases.<name>.mapping.read``) read exports of
    spreadsheet programs (e.g. Latin-1, ``;`` and ``37,5``).
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return read_parquet(path)
    if not (name.endswith(".csv") or name.endswith(".csv.gz") or name.endswith(".tsv") or name.endswith(".txt")):
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
        raise UserInputError(path, None, f"expected a complete gzip file (truncated or corrupt: {type(exc).__name__}: {exc})") from None
    if raw[:4] == b"PAR1":
        raise UserInputError(path, None, "expected CSV text; this is a Parquet file: rename it .parquet")
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise UserInputError(path, None, f"unknown text encoding '{encoding}' (mapping.read.encoding); expected e.g. utf-8, latin-1, cp1252") from None
    except UnicodeDecodeError as exc:
        line, column = _csv_position(raw, exc.start, separator)
        bad = raw[exc.start : exc.start + 1].hex()
        where = f"line {line}" + (f", column '{column}'" if column else "")
        raise UserInputError(
            path, None,
            f"expected {encoding.upper()} text; {where} has byte 0x{bad}, which {encoding} cannot decode ({exc.reason}); "
            "fix: mapping.read.encoding: latin-1 (or cp1252) for a Latin-1/Windows export, or save the file as UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # byte-order mark of spreadsheet exports
    first = text.split("\n", 1)[0]
    if separator not in first:
        other = [s for s in (";", "\t", "|", ",") if s != separator and s in first]
        if other:
            sep = {"\t": "\\t"}.get(other[0], other[0])
            raise UserInputError(path, None, f"expected fields separated by '{separator}', the header is separated by '{sep}'; fix: mapping.read.separator: '{sep}'")
    try:
        return pl.read_csv(text.encode("utf-8"), infer_schema_length=10000, null_values=["", "NA", "NaN"], separator=separator, decimal_comma=decimal_comma)
    except Exception as exc:  # noqa: BLE001 - polars raises several parse errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(path, None, f"expected a well-formed CSV table ({first[:160]})") from None


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
def say(line: str) -> None:
    """One line to the terminal's stderr in one write (jobs running in parallel cannot split it)."""
    data = (line.replace("\n", " ") + "\n").encode("utf-8", errors="replace")
    try:
        os.write(sys.__stderr__.fileno(), data)
    except (OSError, ValueError, AttributeError):
        print(line, file=sys.__stderr__, flush=True)


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
        _remove_outputs(smk.output)
        for line in exc.lines():
            msg = f"ERROR in rule {smk.rule}: {line}"
            log.error(msg)
            say(msg)
        for line in exc.report():
            log.info(line)
            say(f"  {smk.rule}: {line}")
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - last-resort guard: traceback to log only
        log.error("internal error\n%s", traceback.format_exc())
        _remove_outputs(smk.output)
        where = f" (traceback in {log_path})" if log_path else ""
        say(f"ERROR in rule {smk.rule}: internal error {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}")
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
