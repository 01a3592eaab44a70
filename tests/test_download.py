"""Download of the open PhysioNet demos, tested against a loopback HTTP server with Range support.

The server (127.0.0.1, port 0, one thread) serves a folder that mirrors ../shared/data: the MIMIC-IV
demo copy there has the published SHA256SUMS.txt (its icu/chartevents.csv.gz is a reconstruction that
does not match it: a real corrupted file), the eICU demo copy has none. It records every request
and can cut a response after N bytes (closing the connection) or ignore Range headers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
import yaml

from helpers import make_workdir, run_snakemake
from sepsis_cs.download import (
    STATUS_NO_CHECKSUM,
    STATUS_VERIFIED,
    DownloadError,
    HTTPStatusError,
    download_dataset,
    fetch,
    parse_sha256sums,
    safe_relative,
    sha256_file,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MIMIC = SHARED / "mimic-iv-demo-2.2"
EICU = SHARED / "eicu-crd-demo-2.0.1"

pytestmark = pytest.mark.skipif(not (MIMIC / "SHA256SUMS.txt").is_file() or not EICU.is_dir(), reason="demo copies absent")

MIMIC_SMALL = ["hosp/admissions.csv.gz", "hosp/patients.csv.gz", "icu/icustays.csv.gz"]
EICU_SMALL = ["patient.csv.gz", "hospital.csv.gz"]


def published() -> dict[str, str]:
    return parse_sha256sums((MIMIC / "SHA256SUMS.txt").read_text())


# ----------------------------------------------------------------------------- loopback server
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        target = (srv.root / rel).resolve()
        if not target.is_file() or srv.root not in target.parents:
            srv.requests.append((rel, rng, 404))
            self.send_error(404)
            return
        data = target.read_bytes()
        size, start, status = len(data), 0, 200
        if rng and not srv.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m, rng
            start = int(m.group(1))
            if start >= size:
                srv.requests.append((rel, rng, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        srv.requests.append((rel, rng, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        body = data[start:]
        cut = srv.cut.pop(rel, None)
        if cut is not None:  # send N bytes, then drop the connection (HTTP/1.0: closes on return)
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class Mirror:
    """A running loopback server over ``root``; ``requests`` lists (path, Range header, status)."""

    def __init__(self, root: Path):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.root = root.resolve()
        self.httpd.requests = []
        self.httpd.cut = {}
        self.httpd.ignore_range = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.httpd.requests

    def url(self, sub: str = "") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{sub}"

    def data_requests(self, prefix: str = "") -> list:
        return [r for r in self.requests if r[0].startswith(prefix) and not r[0].endswith("SHA256SUMS.txt")]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch):
    """urllib honours http_proxy: keep 127.0.0.1 direct here and in the Snakemake subprocesses."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def mirror():
    """Serves ../shared/data read-only."""
    m = Mirror(SHARED)
    yield m
    m.close()


def _corrupted_mirror(dest: Path) -> Path:
    """A MIMIC-IV demo subset whose hosp/patients.csv.gz differs from SHA256SUMS.txt by one byte."""
    root = dest / "mimic-iv-demo-2.2"
    for rel in ["SHA256SUMS.txt", *MIMIC_SMALL]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MIMIC / rel, root / rel)
    bad = bytearray((root / "hosp/patients.csv.gz").read_bytes())
    bad[len(bad) // 2] ^= 0xFF
    (root / "hosp/patients.csv.gz").write_bytes(bytes(bad))
    return dest


# ----------------------------------------------------------------------------- pure functions
def test_parse_sha256sums_reads_the_published_list():
    sums = published()
    assert len(sums) == 34
    assert sums["hosp/admissions.csv.gz"] == sha256_file(MIMIC / "hosp/admissions.csv.gz")
    two_spaces = parse_sha256sums(f"{'a' * 64}  *./x/y.csv.gz\n\n")
    assert two_spaces == {"x/y.csv.gz": "a" * 64}
    with pytest.raises(DownloadError) as exc:
        parse_sha256sums("abc hosp/x.csv.gz\n", "SUMS")
    assert "line 1" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", ["../x.csv.gz", "/etc/passwd", "hosp/../../x", ""])
def test_paths_cannot_leave_the_download_folder(bad):
    with pytest.raises(DownloadError):
        safe_relative(bad)


# ----------------------------------------------------------------------------- fetch: resume
def test_interrupted_download_resumes_with_range(mirror, tmp_path):
    rel = "hosp/labevents.csv.gz"
    src = MIMIC / rel
    size = src.stat().st_size
    mirror.httpd.cut[f"mimic-iv-demo-2.2/{rel}"] = 300_000
    dest = tmp_path / rel
    url = mirror.url(f"mimic-iv-demo-2.2/{rel}")

    with pytest.raises(DownloadError) as exc:
        fetch(url, dest, expected_sha256=published()[rel], retries=0, retry_wait_s=0)
    msg = str(exc.value)
    assert "\n" not in msg and rel in msg and "300000 bytes kept" in msg
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and part.stat().st_size == 300_000

    res = fetch(url, dest, expected_sha256=published()[rel], retries=0, retry_wait_s=0)
    assert mirror.requests[-1] == (f"mimic-iv-demo-2.2/{rel}", "bytes=300000-", 206)
    assert res.resumed and res.requests == 1 and res.bytes_received == size - 300_000
    assert res.sha256 == published()[rel] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert dest.read_bytes() == src.read_bytes() and not part.exists()


def test_retry_within_one_call_resumes(mirror, tmp_path):
    rel = "hosp/admissions.csv.gz"
    mirror.httpd.cut[f"mimic-iv-demo-2.2/{rel}"] = 1000
    res = fetch(mirror.url(f"mimic-iv-demo-2.2/{rel}"), tmp_path / "a.csv.gz", expected_sha256=published()[rel], retries=1, retry_wait_s=0)
    assert [r[1:] for r in mirror.requests] == [(None, 200), ("bytes=1000-", 206)]
    assert res.resumed and res.sha256 == published()[rel]


def test_server_ignoring_range_gets_the_file_from_the_start(mirror, tmp_path):
    rel = "hosp/admissions.csv.gz"
    mirror.httpd.ignore_range = True
    mirror.httpd.cut[f"mimic-iv-demo-2.2/{rel}"] = 5000
    res = fetch(mirror.url(f"mimic-iv-demo-2.2/{rel}"), tmp_path / "a.csv.gz", expected_sha256=published()[rel], retries=1, retry_wait_s=0)
    assert [r[2] for r in mirror.requests] == [200, 200]
    assert not res.resumed and res.sha256 == published()[rel]
    assert res.bytes_received == 5000 + (MIMIC / rel).stat().st_size


def test_complete_partial_file_is_accepted_on_416(mirror, tmp_path):
    rel = "hosp/admissions.csv.gz"
    dest = tmp_path / "a.csv.gz"
    shutil.copyfile(MIMIC / rel, tmp_path / "a.csv.gz.part")
    res = fetch(mirror.url(f"mimic-iv-demo-2.2/{rel}"), dest, expected_sha256=published()[rel], retries=0)
    assert [r[2] for r in mirror.requests] == [416]
    assert res.sha256 == published()[rel] and dest.exists()


# ----------------------------------------------------------------------------- datasets
def test_dataset_verified_once_and_never_downloaded_again(mirror, tmp_path):
    dest = tmp_path / "mimic"
    rows = download_dataset(mirror.url("mimic-iv-demo-2.2/"), dest, MIMIC_SMALL, retries=0)
    sums = published()
    assert [r["file"] for r in rows] == sorted(MIMIC_SMALL)
    for r in rows:
        assert r["status"] == STATUS_VERIFIED and r["sha256"] == r["expected_sha256"] == sums[r["file"]]
        assert r["size_bytes"] == (MIMIC / r["file"]).stat().st_size == (dest / r["file"]).stat().st_size
    assert len(mirror.data_requests()) == 3 and (dest / "SHA256SUMS.txt").exists()

    n = len(mirror.requests)
    again = download_dataset(mirror.url("mimic-iv-demo-2.2/"), dest, MIMIC_SMALL, retries=0)
    assert len(mirror.requests) == n  # not even the checksum list is asked for again
    assert again == rows

    # a table added to the list later is the only one fetched
    download_dataset(mirror.url("mimic-iv-demo-2.2/"), dest, [*MIMIC_SMALL, "icu/d_items.csv.gz"], retries=0)
    assert [r[0] for r in mirror.requests[n:]] == ["mimic-iv-demo-2.2/icu/d_items.csv.gz"]


def test_dataset_without_checksums_records_own_hash(mirror, tmp_path, caplog):
    dest = tmp_path / "eicu"
    with caplog.at_level("INFO", logger="sepsis_cs.download"):
        rows = download_dataset(mirror.url("eicu-crd-demo-2.0.1/"), dest, EICU_SMALL, retries=0)
    assert any("no checksum list" in m and "HTTP 404" in m for m in caplog.messages)
    for r in rows:
        assert r["status"] == STATUS_NO_CHECKSUM and r["expected_sha256"] == ""
        assert r["sha256"] == sha256_file(EICU / r["file"])
        assert r["size_bytes"] == (EICU / r["file"]).stat().st_size
    n_data = len(mirror.data_requests())
    download_dataset(mirror.url("eicu-crd-demo-2.0.1/"), dest, EICU_SMALL, retries=0)
    assert len(mirror.data_requests()) == n_data == 2  # present files are kept, only SHA256SUMS.txt asked again


def test_corrupted_file_rejected_in_one_line(mirror, tmp_path):
    """The reconstructed chartevents of the local copy does not match the published checksum."""
    dest = tmp_path / "mimic"
    rel = "icu/chartevents.csv.gz"
    with pytest.raises(DownloadError) as exc:
        download_dataset(mirror.url("mimic-iv-demo-2.2/"), dest, ["hosp/patients.csv.gz", rel], retries=0)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(dest / rel)) and "sha256 mismatch" in msg
    assert published()[rel] in msg and sha256_file(MIMIC / rel) in msg
    assert not (dest / rel).exists() and not (dest / (rel + ".part")).exists()
    assert (dest / "hosp/patients.csv.gz").exists()  # verified before, kept


def test_stale_present_file_is_replaced(mirror, tmp_path):
    dest = tmp_path / "mimic"
    (dest / "hosp").mkdir(parents=True)
    (dest / "hosp/patients.csv.gz").write_bytes(b"not the published file")
    rows = download_dataset(mirror.url("mimic-iv-demo-2.2/"), dest, ["hosp/patients.csv.gz"], retries=0)
    assert rows[0]["status"] == STATUS_VERIFIED
    assert (dest / "hosp/patients.csv.gz").read_bytes() == (MIMIC / "hosp/patients.csv.gz").read_bytes()


def test_missing_table_names_file_and_status(mirror, tmp_path):
    with pytest.raises(HTTPStatusError) as exc:  # lab.csv.gz is absent from the local eICU copy
        download_dataset(mirror.url("eicu-crd-demo-2.0.1/"), tmp_path / "e", ["patient.csv.gz", "lab.csv.gz"], retries=2)
    assert exc.value.status == 404 and "lab.csv.gz" in str(exc.value) and "\n" not in str(exc.value)
    assert len(mirror.data_requests("eicu-crd-demo-2.0.1/lab")) == 1  # a 404 is not retried


# ----------------------------------------------------------------------------- the Snakemake rule
def _config(path: Path, mimic_url: str, eicu_url: str | None, mimic_dir: str, eicu_dir: str | None) -> Path:
    dbs = {"mimic_iv_demo": {"type": "mimic_iv", "download": True, "path": mimic_dir}}
    base = {"mimic_iv": mimic_url}
    if eicu_url:
        dbs["eicu_demo"] = {"type": "eicu", "download": True, "path": eicu_dir}
        base["eicu"] = eicu_url
    cfg = {
        "databases": dbs,
        "download": {"base_url": base, "tables": {"mimic_iv": MIMIC_SMALL, "eicu": EICU_SMALL}, "retries": 0, "retry_wait_s": 0},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_snakemake_rule_end_to_end(mirror, tmp_path):
    wd = make_workdir(tmp_path / "wd")
    cfg = _config(wd / "dl.yaml", mirror.url("mimic-iv-demo-2.2/"), mirror.url("eicu-crd-demo-2.0.1/"), "dl/mimic", "dl/eicu")
    targets = ["dl/mimic/.download_complete", "dl/eicu/.download_complete"]
    run_snakemake(wd, *targets, "--cores", "1", "--configfile", str(cfg))

    mimic = json.loads((wd / targets[0]).read_text())
    eicu = json.loads((wd / targets[1]).read_text())
    assert (mimic["n_files"], mimic["n_verified"], mimic["n_no_checksum"]) == (3, 3, 0)
    assert (eicu["n_files"], eicu["n_verified"], eicu["n_no_checksum"]) == (2, 0, 2)
    assert mimic["total_bytes"] == sum((MIMIC / f).stat().st_size for f in MIMIC_SMALL)
    manifest = pl.read_csv(wd / "dl/mimic/download_manifest.csv")
    assert manifest.columns == ["file", "size_bytes", "sha256", "expected_sha256", "status", "url"]
    assert manifest["sha256"].to_list() == [published()[f] for f in sorted(MIMIC_SMALL)]
    for f in MIMIC_SMALL:
        assert sha256_file(wd / "dl/mimic" / f) == published()[f]
    for f in EICU_SMALL:
        assert (wd / "dl/eicu" / f).read_bytes() == (EICU / f).read_bytes()
    log = (wd / "results/logs/eicu_demo/download_physionet.log").read_text()
    assert "no checksum list" in log and "2 without a published checksum" in log
    assert (wd / "results/benchmarks/mimic_iv_demo/download_physionet.tsv").exists()

    # rerun both rules: everything is re-verified from disk, no table is requested again
    n_data = len(mirror.data_requests())
    assert n_data == 5
    run_snakemake(wd, *targets, "--cores", "1", "--configfile", str(cfg),
                  "--forcerun", "download_physionet_mimic_iv_demo", "download_physionet_eicu_demo")
    assert len(mirror.data_requests()) == n_data
    assert json.loads((wd / targets[0]).read_text()) == mimic


@pytest.mark.slow
def test_snakemake_rule_rejects_corrupted_file(tmp_path):
    server = Mirror(_corrupted_mirror(tmp_path / "mirror"))
    try:
        wd = make_workdir(tmp_path / "wd")
        cfg = _config(wd / "bad.yaml", server.url("mimic-iv-demo-2.2/"), None, "dl/bad", None)
        proc = run_snakemake(wd, "dl/bad/.download_complete", "--cores", "1", "--configfile", str(cfg), check=False)
    finally:
        server.close()
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "sha256 mismatch" in ln]
    assert lines and lines[0].startswith("ERROR in rule download_physionet_mimic_iv_demo: dl/bad/hosp/patients.csv.gz: ")
    assert not (wd / "dl/bad/.download_complete").exists() and not (wd / "dl/bad/download_manifest.csv").exists()
    assert not (wd / "dl/bad/hosp/patients.csv.gz").exists() and not (wd / "dl/bad/hosp/patients.csv.gz.part").exists()
    assert sha256_file(wd / "dl/bad/hosp/admissions.csv.gz") == published()["hosp/admissions.csv.gz"]
