# Download of the open PhysioNet demos (opt-in: `download: true` on a mimic_iv / eicu database).
# One rule per download folder, `download_physionet_<database>`; its output is the marker
# `{path}/.download_complete` that raw_inputs() (common.smk) hands to the database adapters, written
# only after every table of `download.tables.<type>` is present and verified, next to the manifest
# `{path}/download_manifest.csv`. The downloaded tables themselves are not declared outputs, so
# Snakemake never deletes them; a rerun re-verifies what is there and fetches only what is missing.

_DOWNLOAD_FOLDERS = {}
for _name, _db in config["databases"].items():
    if not _db.get("download"):
        continue
    if _db["type"] not in ("mimic_iv", "eicu"):
        sys.exit(
            f"ERROR config: key 'databases.{_name}.download': only databases of type mimic_iv or eicu can be downloaded"
        )
    _marker = f"{_db['path']}/.download_complete"  # same string as raw_inputs()
    if _marker in _DOWNLOAD_FOLDERS:
        _other = _DOWNLOAD_FOLDERS[_marker]
        if config["databases"][_other]["type"] != _db["type"]:
            sys.exit(
                f"ERROR config: key 'databases.{_name}.path': same download folder as '{_other}' but another type"
            )
        continue
    _DOWNLOAD_FOLDERS[_marker] = _name


for _marker, _name in _DOWNLOAD_FOLDERS.items():
    _db = config["databases"][_name]

    rule:
        name:
            f"download_physionet_{_name}"
        output:
            marker=_marker,
            manifest=report(
                f"{_db['path']}/download_manifest.csv",
                caption=caption("download_manifest"),
                category="Data",
                subcategory=_name,
                labels={"table": "download manifest"},
            ),
        log:
            f"results/logs/{_name}/download_physionet.log",
        benchmark:
            f"results/benchmarks/{_name}/download_physionet.tsv"
        conda:
            "../../envs/ingest.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=120,
        params:
            database=_name,
            dest_dir=_db["path"],
            base_url=config["download"]["base_url"][_db["type"]],
            files=config["download"]["tables"][_db["type"]],
            checksums_file=config["download"]["checksums_file"],
            retries=config["download"]["retries"],
            retry_wait_s=config["download"]["retry_wait_s"],
            timeout_s=config["download"]["timeout_s"],
        script:
            "../../scripts/download_physionet.py"
