# Fitted external models: parse-time checks of config `external_models` and input functions
# (kept apart from the rules, as snakemake --lint asks). Included by external.smk.

if str(Path(workflow.basedir) / "scripts") not in sys.path:
    sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
# stdlib-only at import: checks the entries (pickles refused, mapping parsed) while the config is read
from sepsis_cs.errors import UserInputError as _UserInputError
from sepsis_cs.external import parse_entries as _parse_external


def _external_entries():
    reserved = set(config.get("supervised", {}).get("models") or {}) | {"apache_iv"}
    try:
        return _parse_external(
            config.get("external_models", []), ANALYSED, DATABASES, reserved
        )
    except _UserInputError as exc:
        sys.exit(f"ERROR {exc.one_line()}")


EXTERNAL_FILES, _FITTED_LIST = _external_entries()
FITTED_MODELS = {m.name: m for m in _FITTED_LIST}
FITTED_DIR = "results/{database}/external/fitted/{external}"


def _fitted_entry(wc):
    """The entry as the script reads it (key-sorted: params compare by printed form)."""
    import json

    return json.loads(
        json.dumps(FITTED_MODELS[wc.external].raw, sort_keys=True, default=str)
    )
