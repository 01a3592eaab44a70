"""Fetch and verify the tables of one open PhysioNet dataset (rule download_physionet_<database>).

Writes the manifest (file, size, sha256, published sha256, status) and, last, the marker
`{path}/.download_complete` that the database adapter waits for. On any failure both are removed.
"""

import logging

import polars as pl

from sepsis_cs.download import MANIFEST_COLUMNS, download_dataset, manifest_summary
from sepsis_cs.io import run_script, write_csv, write_json

log = logging.getLogger("sepsis_cs.download")


def main(smk):
    p = smk.params
    rows = download_dataset(
        p.base_url,
        p.dest_dir,
        list(p.files),
        checksums_file=p.checksums_file,
        timeout=p.timeout_s,
        retries=p.retries,
        retry_wait_s=p.retry_wait_s,
    )
    manifest = pl.DataFrame(rows, schema={c: (pl.Int64 if c == "size_bytes" else pl.String) for c in MANIFEST_COLUMNS})
    write_csv(manifest, smk.output.manifest)
    summary = manifest_summary(rows, p.database, p.base_url, p.checksums_file)
    log.info(
        "%s: %d file(s), %d verified against %s, %d without a published checksum, %d bytes",
        p.database,
        summary["n_files"],
        summary["n_verified"],
        p.checksums_file,
        summary["n_no_checksum"],
        summary["total_bytes"],
    )
    write_json(summary, smk.output.marker)  # last: the marker exists only when every file is in place


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
