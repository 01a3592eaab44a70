"""Download the open PhysioNet demo databases: resumable fetch, SHA256 verification, manifest.

Used by rule ``download_physionet_<database>`` (``workflow/rules/download.smk``). Only open-access
datasets (MIMIC-IV demo, eICU-CRD demo) can be fetched this way: the functions send no credentials,
and a 401/403 answer stops with a one-line error telling the user to download by hand.

Guarantees
- A file appears under its final name only after it was received completely (the byte count the
  server announced) and, where ``SHA256SUMS.txt`` lists it, after its SHA256 matched. Until then it
  lives as ``<name>.part``.
- An interrupted download resumes from the ``.part`` file with an HTTP ``Range`` request (on the next
  attempt within a run, or on the next run). A server that ignores ``Range`` (answers 200) gets the
  file from the start.
- A file already present and matching its published checksum is not requested again. A present file
  without a published checksum is kept (it was renamed into place only once complete) and its own
  SHA256 and size are recorded. A present file whose checksum does not match is removed and fetched once
  more; a freshly downloaded file that does not match is removed and the run stops with one line.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import UserInputError

log = logging.getLogger("sepsis_cs.download")

CHUNK_BYTES = 1 << 20
USER_AGENT = "sepsis-cs-workflow (snakemake; open PhysioNet demo download)"
STATUS_VERIFIED = "verified"
STATUS_NO_CHECKSUM = "no_checksum"
MANIFEST_COLUMNS = ("file", "size_bytes", "sha256", "expected_sha256", "status", "url")


class DownloadError(UserInputError):
    """A file that could not be fetched or verified (one line naming the file)."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error status."""

    def __init__(self, file, url: str, status: int, reason: str = ""):
        self.status = status
        self.url = url
        hint = ""
        if status in (401, 403):
            hint = (
                "; the dataset needs a PhysioNet login, which this rule does not handle: download it by hand "
                "(README: getting the databases) and set download: false"
            )
        elif status == 404:
            hint = "; check download.base_url and download.tables in the config"
        super().__init__(file, None, f"HTTP {status} {reason} for {url}{hint}".replace("  ", " "))


class _Incomplete(Exception):
    """The connection ended before the announced number of bytes arrived (retryable)."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size_bytes: int
    sha256: str
    resumed: bool  # at least one request continued a partial file with Range
    requests: int
    bytes_received: int


# ----------------------------------------------------------------------------- checksums
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$")


def parse_sha256sums(text: str, source: str = "SHA256SUMS.txt") -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <path>``) into ``{relative path: lowercase hex}``."""
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _SUM_LINE.match(line)
        if not m:
            raise DownloadError(source, None, f"line {n} is not '<sha256> <path>' (expected sha256sum format)")
        sums[m.group(2).removeprefix("./")] = m.group(1).lower()
    return sums


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def safe_relative(rel: str) -> str:
    """A dataset-relative POSIX path that cannot leave the destination folder."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise DownloadError(rel, None, "expected a relative path inside the dataset (no '..', no leading '/')")
    return p.as_posix()


def file_url(base_url: str, rel: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(safe_relative(rel))


# ----------------------------------------------------------------------------- one file
def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes a-b/n`` -> (a, n); ``bytes */n`` -> (None, n)."""
    m = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = None if m.group(1) == "*" else int(m.group(1))
    total = None if m.group(2) == "*" else int(m.group(2))
    return start, total


def _fetch_once(url: str, part: Path, timeout: float, stats: dict) -> None:
    """One HTTP request continuing ``part``; returns when the announced bytes are all on disk."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    stats["requests"] += 1
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:  # the partial file is already complete
                return
            part.unlink()  # partial file longer than the remote one: start again
            raise _Incomplete(f"partial file of {offset} bytes does not fit the remote size {total}") from None
        raise
    with resp:
        status = resp.status
        if status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Incomplete(f"server resumed at byte {start}, expected {offset}")
            mode = "ab"
            stats["resumed"] = True
        elif status == 200:
            offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise urllib.error.HTTPError(url, status, resp.reason, resp.headers, None)
        received = 0
        with open(part, mode) as fh:
            while True:
                block = resp.read(CHUNK_BYTES)
                if not block:
                    break
                fh.write(block)
                received += len(block)
        stats["bytes_received"] += received
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Incomplete(f"connection closed after {size} of {total} bytes")


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    retry_wait_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Download ``url`` to ``dest`` through ``dest.part`` with resume; verify; rename into place.

    Network failures and early connection closes are retried ``retries`` times, each attempt
    continuing the partial file with ``Range``. If attempts run out, the ``.part`` file is kept so the
    next run resumes. A SHA256 mismatch removes the partial file and raises :class:`DownloadError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    stats = {"requests": 0, "resumed": False, "bytes_received": 0}
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, timeout, stats)
            break
        except urllib.error.HTTPError as exc:
            retryable = exc.code in (408, 429) or exc.code >= 500
            if not retryable or attempt >= retries:
                raise HTTPStatusError(dest, url, exc.code, str(exc.reason or "")) from None
            why = f"HTTP {exc.code}"
        except (_Incomplete, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            why = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            if attempt >= retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    dest,
                    None,
                    f"download from {url} failed after {attempt + 1} attempt(s) ({why}); "
                    f"{have} bytes kept in {part.name}, rerun to resume",
                ) from None
        attempt += 1
        log.warning("%s: attempt %d failed (%s); retrying with resume", dest, attempt, why)
        sleep(retry_wait_s * attempt)
    digest = sha256_file(part)
    size = part.stat().st_size
    if expected_sha256 is not None and digest != expected_sha256.lower():
        part.unlink()
        raise DownloadError(
            dest,
            None,
            f"sha256 mismatch after download from {url} (expected {expected_sha256.lower()}, got {digest}, "
            f"{size} bytes); download removed, nothing marked verified",
        )
    os.replace(part, dest)
    return FetchResult(dest, size, digest, stats["resumed"], stats["requests"], stats["bytes_received"])


# ----------------------------------------------------------------------------- one dataset
def load_checksums(
    base_url: str, dest_dir: Path, name: str, *, timeout: float, retries: int, retry_wait_s: float
) -> dict[str, str] | None:
    """The dataset's published checksums (cached in ``dest_dir/name``), or None when none is published."""
    local = dest_dir / name
    if not local.exists():
        try:
            fetch(file_url(base_url, name), local, timeout=timeout, retries=retries, retry_wait_s=retry_wait_s)
        except HTTPStatusError as exc:
            if exc.status == 404:
                log.warning(
                    "no checksum list at %s (HTTP 404): files cannot be verified; each file's own sha256 and size "
                    "are recorded in the manifest with status '%s'",
                    exc.url,
                    STATUS_NO_CHECKSUM,
                )
                return None
            raise
        log.info("checksum list %s fetched from %s", name, file_url(base_url, name))
    else:
        log.info("checksum list %s already present in %s", name, dest_dir)
    return parse_sha256sums(local.read_text(encoding="utf-8"), str(local))


def download_dataset(
    base_url: str,
    dest_dir: str | os.PathLike,
    files: list[str],
    *,
    checksums_file: str = "SHA256SUMS.txt",
    timeout: float = 60.0,
    retries: int = 3,
    retry_wait_s: float = 5.0,
) -> list[dict]:
    """Make every file of ``files`` present and verified in ``dest_dir``; return manifest rows."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    files = [safe_relative(f) for f in files]
    sums = load_checksums(base_url, dest_dir, checksums_file, timeout=timeout, retries=retries, retry_wait_s=retry_wait_s)
    rows = []
    for rel in files:
        dest = dest_dir / rel
        url = file_url(base_url, rel)
        expected = sums.get(rel) if sums is not None else None
        if sums is not None and expected is None:
            log.warning("%s: not listed in %s; its own sha256 and size are recorded, not verified", rel, checksums_file)
        digest = None
        if dest.exists():
            digest = sha256_file(dest)
            if expected is not None and digest != expected:
                log.warning("%s: present but sha256 does not match %s; removed, downloading again", rel, checksums_file)
                dest.unlink()
                digest = None
            else:
                log.info("%s: already present (%s), not downloaded", rel, "sha256 verified" if expected else "no checksum")
        if digest is None:
            res = fetch(url, dest, expected_sha256=expected, timeout=timeout, retries=retries, retry_wait_s=retry_wait_s)
            digest = res.sha256
            log.info(
                "%s: downloaded %d bytes in %d request(s)%s, %s",
                rel,
                res.bytes_received,
                res.requests,
                " (resumed with Range)" if res.resumed else "",
                "sha256 verified" if expected else "no published checksum, own sha256 recorded",
            )
        rows.append(
            {
                "file": rel,
                "size_bytes": dest.stat().st_size,
                "sha256": digest,
                "expected_sha256": expected or "",
                "status": STATUS_VERIFIED if expected else STATUS_NO_CHECKSUM,
                "url": url,
            }
        )
    return sorted(rows, key=lambda r: r["file"])


def manifest_summary(rows: list[dict], database: str, base_url: str, checksums_file: str) -> dict:
    """Content of the ``.download_complete`` marker: what was checked, in numbers."""
    n_verified = sum(r["status"] == STATUS_VERIFIED for r in rows)
    return {
        "database": database,
        "base_url": base_url,
        "checksums_file": checksums_file,
        "n_files": len(rows),
        "n_verified": n_verified,
        "n_no_checksum": len(rows) - n_verified,
        "total_bytes": sum(r["size_bytes"] for r in rows),
    }
