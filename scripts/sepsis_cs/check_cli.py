"""``scripts/check_contract.py``: check a contract pair without Snakemake, or write starter files.

:func:`load_config` merges config files like Snakemake's ``--configfile`` and validates them against the
schema, so that the check sees the same mapping and settings as the workflow.
"""

from __future__ import annotations

import copy
from pathlib import Path

from .contract import ContractSettings
from .dictionary import Dictionary, load_dictionary
from .errors import ConfigError, UserInputError
from .io import read_yaml
from .mapping import Mapping
from .onboard import check_pair, database_dictionary
from .problems import Problems

ROOT = Path(__file__).resolve().parents[2]


def deep_update(base: dict, over: dict) -> dict:
    """Snakemake's --configfile merge: nested mappings merged key by key, other values replaced."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(paths: list[str | Path] = (), base: str | Path | None = None) -> dict:
    """config/config.yaml with ``paths`` merged over it, ``name: null`` databases removed, checked against the schema."""
    base = Path(base) if base else ROOT / "config" / "config.yaml"
    cfg = read_yaml(base, "configuration") or {}
    for p in paths:
        over = read_yaml(p, "configuration") or {}
        if not isinstance(over, dict):
            raise ConfigError(p, None, "expected a YAML mapping of config keys")
        cfg = deep_update(cfg, over)
    if isinstance(cfg.get("databases"), dict):
        cfg["databases"] = {k: v for k, v in cfg["databases"].items() if v is not None}
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict, schema_path: str | Path | None = None) -> None:
    """Schema check with the workflow's one-line message (``key 'a.b': ...``)."""
    import jsonschema
    import yaml

    schema_path = Path(schema_path) if schema_path else ROOT / "config" / "schema" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if err is not None:
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError("config", key, err.message.splitlines()[0])


def dictionary_path(cfg: dict) -> Path:
    p = Path(cfg.get("dictionary", "config/variables.yaml"))
    return p if p.is_absolute() or p.exists() else ROOT / p


def load_database_dictionary(cfg: dict, mapping: Mapping) -> Dictionary:
    return database_dictionary(load_dictionary(dictionary_path(cfg)), mapping)


# ----------------------------------------------------------------------------- command line
def _find_database(cfg: dict, cohort: str | None) -> str | None:
    """The contract database of ``cfg`` whose cohort file is ``cohort`` (or the only one)."""
    dbs = {k: v for k, v in cfg.get("databases", {}).items() if v.get("type") == "contract"}
    if cohort:
        same = [k for k, v in dbs.items() if v.get("cohort") and Path(v["cohort"]).resolve() == Path(cohort).resolve()]
        return same[0] if same else None
    return next(iter(dbs)) if len(dbs) == 1 else None


def suggestion_yaml(problems: Problems, name: str, current: dict, cohort: str, ts: str) -> str | None:
    """A config overlay holding the current mapping plus every suggested entry; None when nothing to suggest."""
    import yaml

    from .problems import suggested_mapping

    if not any(p.patch for p in problems.errors):
        return None
    mapping = suggested_mapping(problems.errors, current)
    body = yaml.safe_dump({"databases": {name: {"type": "contract", "cohort": str(cohort), "timeseries": str(ts), "mapping": mapping}}},
                          sort_keys=False, default_flow_style=None, allow_unicode=True, width=120)
    return ("# Suggested by scripts/check_contract.py: replace every TODO, check guessed kinds/units of extra_variables,\n"
            "# then use it with snakemake --configfile (or copy the mapping into your config).\n" + body)


def cli(argv: list[str] | None = None, out=None) -> int:
    """``scripts/check_contract.py``: exit 0 when the pair meets the contract, 1 otherwise."""
    import argparse
    import sys

    from .io import write_csv, write_text
    from .problems import printed_lines, summary_lines

    out = out or sys.stdout
    ap = argparse.ArgumentParser(
        prog="check_contract.py",
        description="Check a cohort + time-series pair against the contract in one pass (no Snakemake), or write starter files.",
    )
    ap.add_argument("--cohort", help="cohort file (.parquet, .csv, .csv.gz); default: the database's in --config")
    ap.add_argument("--timeseries", help="time-series file; default: the database's in --config")
    ap.add_argument("--config", action="append", default=[], help="config overlay(s) merged over config/config.yaml, as snakemake --configfile")
    ap.add_argument("--database", help="database of the config whose files and mapping are checked")
    ap.add_argument("--mapping", help="YAML file holding a mapping (or a config with databases.<name>.mapping); overrides the config's")
    ap.add_argument("--problems", help="write every problem to this CSV")
    ap.add_argument("--suggest", help="write a config overlay with the suggested mapping entries to this YAML file")
    ap.add_argument("--starter", metavar="DIR", help="write an empty typed pair, a filled example, a codebook and a config overlay to DIR")
    ap.add_argument("--n-stays", type=int, default=40, help="stays of the starter example (default 40)")
    args = ap.parse_args(argv)

    def say(text=""):
        print(text, file=out)

    try:
        cfg = load_config(args.config)
        name = args.database or _find_database(cfg, args.cohort)
        db = cfg.get("databases", {}).get(name, {}) if name else {}
        settings = ContractSettings.from_config(cfg, database=db)  # the database's own time window and resolution
        if args.database and (not db or db.get("type") != "contract"):
            raise ConfigError("config", f"databases.{args.database}", "expected a database of type contract in the config")
        raw_mapping = db.get("mapping") or {}
        if args.mapping:
            m = read_yaml(args.mapping, "mapping") or {}
            if isinstance(m, dict) and "databases" in m:
                m = next(iter(m["databases"].values()), {}).get("mapping", {})
            elif isinstance(m, dict) and "mapping" in m:
                m = m["mapping"]
            raw_mapping = m or {}
        mapping = Mapping.from_config(raw_mapping, where=f"databases.{name or '<name>'}.mapping")
        base = load_dictionary(dictionary_path(cfg))
        if args.starter:
            from .starter import write_starter

            paths = write_starter(args.starter, database_dictionary(base, mapping), settings, n_stays=args.n_stays, seed=int(cfg.get("seed", 1)))
            say(f"wrote {len(paths)} starter files under {args.starter}:")
            for p in paths:
                say(f"  {p}")
            return 0
        cohort = args.cohort or db.get("cohort")
        ts = args.timeseries or db.get("timeseries")
        if not cohort or not ts:
            ap.error("give --cohort and --timeseries, or --config with --database (a contract database)")
        outcome = check_pair(cohort, ts, mapping, base, settings, database=name)
    except UserInputError as exc:  # ConfigError included
        say(f"ERROR {exc.one_line()}")
        return 1
    P = outcome.problems
    for line in printed_lines(P.errors):
        say(f"ERROR {line}")
    for line in summary_lines(P.items):
        say(line)
    if args.problems:
        write_csv(P.frame(), args.problems)
    if outcome.ok:
        n_ts = outcome.timeseries.height if outcome.timeseries is not None else 0
        say(f"PASSED: {outcome.cohort.height} stays and {n_ts} hourly values meet the contract "
            f"({len(P.of('mapped'))} mapping steps, {len(P.of('repair'))} repairs, {len(P.of('warning'))} warnings)")
        return 0
    n = len(P.errors)
    say(f"FAILED: {n} problem{'s' if n != 1 else ''} to fix" + (f"; all listed in {args.problems}" if args.problems else ""))
    text = suggestion_yaml(P, name or "my_database", raw_mapping, cohort, ts)
    if text:
        if args.suggest:
            write_text(text, args.suggest)
            say(f"Suggested mapping written to {args.suggest}: fill in every TODO, then rerun with --config {args.suggest}")
        else:
            say("Suggested mapping (fill in every TODO; save it and rerun with --config FILE, or use --suggest FILE):")
            say(text)
    return 1
