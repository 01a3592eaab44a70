# Shared helpers: config validation, database lists, path patterns, final targets.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = str(Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml")


def _validate_config(cfg):
    """Validate with snakemake.utils.validate; on failure exit with one line naming the key."""
    try:
        validate(cfg, SCHEMA, set_default=True)
    except WorkflowError:
        import jsonschema
        import yaml

        schema = yaml.safe_load(open(SCHEMA))
        err = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(cfg)
        )
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        sys.exit(f"ERROR config: key '{key}': {err.message.splitlines()[0]}")


# `name: null` in an overlay config (--configfile) removes a database declared by config/config.yaml,
# e.g. `databases: {simulated: null, simulated_shift: null, simulated_unrelated: null}` to run real data only
if isinstance(config.get("databases"), dict):
    config["databases"] = {
        k: v for k, v in config["databases"].items() if v is not None
    }
_validate_config(config)

def _str_keys(obj):
    """Mapping keys as text (YAML gives 1, true or 'a'; mixed kinds cannot be key-sorted)."""
    if isinstance(obj, dict):
        return {
            (str(k).lower() if isinstance(k, bool) else str(k)): _str_keys(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_str_keys(v) for v in obj]
    return obj


for _name, _db in config["databases"].items():
    _db.setdefault("analyse", True)
    if _db.get("mapping"):  # level maps may have keys 1, true or 'a': all text from here on
        _db["mapping"] = _str_keys(_db["mapping"])
    if _db["type"] in ("mimic_iv", "eicu") and not _db.get("path"):
        sys.exit(
            f"ERROR config: key 'databases.{_name}.path': required for type {_db['type']}"
        )
    if (
        _db["type"] in ("mimic_iv", "eicu")
        and not _db.get("download")
        and not Path(_db["path"]).is_dir()
    ):
        sys.exit(
            f"ERROR config: key 'databases.{_name}.path': folder {_db['path']} does not exist "
            "(see README: getting the demo databases)"
        )
    if _db.get("mapping") and _db["type"] != "contract":
        sys.exit(
            f"ERROR config: key 'databases.{_name}.mapping': only for type contract (the adapters map their sources in config/concepts.yaml)"
        )
    if _db["type"] == "contract":
        for _k in ("cohort", "timeseries"):
            if not _db.get(_k):
                sys.exit(
                    f"ERROR config: key 'databases.{_name}.{_k}': required for type contract"
                )
            if not Path(_db[_k]).is_file():
                sys.exit(
                    f"ERROR config: key 'databases.{_name}.{_k}': file {_db[_k]} does not exist"
                )

DATABASES = list(config["databases"])
ANALYSED = [d for d in DATABASES if config["databases"][d]["analyse"]]
SIMULATED = [d for d in DATABASES if config["databases"][d]["type"] == "simulated"]
DICTIONARY = config.get("dictionary", "config/variables.yaml")


def dictionary_of(database):
    """A database's data dictionary: config `dictionary`, or for a contract database the copy that
    rule ingest_contract writes with the database's own `mapping.extra_variables` added."""
    if config["databases"][database]["type"] == "contract":
        return f"results/{database}/ingest/variables.yaml"
    return DICTIONARY


def db_dictionary(wildcards):
    """Input function: the data dictionary of the rule's {database}."""
    return dictionary_of(wildcards.database)


# wildcards never match across folders
wildcard_constraints:
    database="[a-z][a-z0-9_]*",


def database_params(wildcards):
    """A database's own settings, key-sorted (params compare by printed form)."""
    import json

    return json.loads(
        json.dumps(config["databases"][wildcards.database], sort_keys=True)
    )


def time_window_of(database):
    """A database's time window: its own `time_window`, else the top-level one."""
    import json

    tw = config["databases"][database].get("time_window") or config["time_window"]
    return json.loads(json.dumps(tw, sort_keys=True))


def resolution_of(database):
    """A database's time resolution (hourly | daily | irregular)."""
    return config["databases"][database].get("resolution", "hourly")


def is_randomised(database):
    """A database that is a randomised trial of CS at time zero (`randomised: true`, or simulated `design: trial`)."""
    db = config["databases"][database]
    return bool(db.get("randomised", db.get("design") == "trial"))


def mapping_params(database):
    """A contract database's mapping (config `databases.<name>.mapping`), key-sorted."""
    import json

    mapping = config["databases"][database].get("mapping") or {}
    return json.loads(json.dumps(mapping, sort_keys=True))


def db_type(database):
    return config["databases"][database]["type"]


def dbs_of_type(*types):
    return [d for d in DATABASES if db_type(d) in types] or ["__none__"]


def raw_inputs(database):
    """Extra input of an adapter rule: the download rule's marker when the database is downloaded."""
    db = config["databases"][database]
    if db.get("download"):
        return [f"{db['path']}/.download_complete"]
    return []


def regex_of(names):
    return "|".join(names) if names else "__none__"


# Final outputs of every phase; rule `all` requests them.
TARGETS = []


def add_targets(*patterns, databases=None):
    """Register final outputs, expanded over the analysed databases."""
    for pattern in patterns:
        TARGETS.extend(
            expand(pattern, database=ANALYSED if databases is None else databases)
        )


def config_params(*keys):
    """``params`` entries for the top-level config keys a rule's script reads.

    Declaring them makes Snakemake rerun the rule (and its downstream) when one of them changes,
    and only then; nested mappings are key-sorted so that the order keys are written in a
    --configfile does not count as a change.
    """
    import json

    return {k: json.loads(json.dumps(config.get(k), sort_keys=True)) for k in keys}


def log_path(rule_name):
    return f"results/logs/{{database}}/{rule_name}.log"


def bench_path(rule_name):
    return f"results/benchmarks/{{database}}/{rule_name}.tsv"


def caption(name):
    return f"../report/{name}.rst"


# MIT-LCP mimic-code reference (config reference.mimic_code): mimic_iv databases checked against it
MIMIC_CODE = (config.get("reference") or {}).get("mimic_code")
CONCORDANCE = [d for d in DATABASES if db_type(d) == "mimic_iv"] if MIMIC_CODE else []


def derived_files(database):
    """Files of a database's bring-your-own mimic-code tables (databases.<name>.derived)."""
    derived = config["databases"][database].get("derived") or {}
    return [v for k, v in sorted(derived.items()) if v]


def concordance_input(wc):
    """The concordance summary, when the database is checked against mimic-code."""
    if wc.database in CONCORDANCE:
        return f"results/{wc.database}/concordance/mimic_code.json"
    return []
