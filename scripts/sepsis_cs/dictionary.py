"""The data dictionary (``config/variables.yaml``): what every contract variable means."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .io import read_yaml

KINDS = {"demographic", "comorbidity", "score", "vital", "lab", "treatment", "outcome"}
TYPES = {"numeric", "binary", "categorical"}
SOURCES = {"static", "hourly"}
AGGREGATIONS = {"mean", "min", "max", "last", "first", "sum", "median"}


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    unit: str
    kind: str
    type: str
    source: str
    range: tuple[float, float] | None = None
    aggregation: str = "mean"
    levels: tuple[str, ...] | None = None
    normal: tuple[float, float] | None = None


@dataclass(frozen=True)
class Dictionary:
    variables: dict[str, Variable] = field(default_factory=dict)

    @property
    def static(self) -> dict[str, Variable]:
        return {k: v for k, v in self.variables.items() if v.source == "static"}

    @property
    def hourly(self) -> dict[str, Variable]:
        return {k: v for k, v in self.variables.items() if v.source == "hourly"}

    def __getitem__(self, name: str) -> Variable:
        return self.variables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.variables


def load_dictionary(path: str | Path) -> Dictionary:
    """Load and check ``variables.yaml``; a malformed entry raises a one-line :class:`ConfigError`."""
    path = Path(path)
    raw = read_yaml(path, "data dictionary")
    if not isinstance(raw, dict) or not isinstance(raw.get("variables"), dict):
        raise ConfigError(path, "variables", "expected a mapping 'variables:' of name -> entry")
    out: dict[str, Variable] = {}
    for name, entry in raw["variables"].items():
        out[name] = parse_variable(name, entry, path, f"variables.{name}")
    return Dictionary(out)


def parse_variable(name: str, entry, path: str | Path, key: str) -> Variable:
    """One dictionary entry checked; ``key`` names it in the one-line :class:`ConfigError`."""
    if not isinstance(entry, dict):
        raise ConfigError(path, key, "expected a mapping with label, unit, kind, type, source")
    for req in ("label", "kind", "type", "source"):
        if req not in entry:
            raise ConfigError(path, f"{key}.{req}", "required field is missing")
    if entry["kind"] not in KINDS:
        raise ConfigError(path, f"{key}.kind", f"expected one of {sorted(KINDS)}, got {entry['kind']!r}")
    if entry["type"] not in TYPES:
        raise ConfigError(path, f"{key}.type", f"expected one of {sorted(TYPES)}, got {entry['type']!r}")
    if entry["source"] not in SOURCES:
        raise ConfigError(path, f"{key}.source", f"expected one of {sorted(SOURCES)}, got {entry['source']!r}")
    agg = entry.get("aggregation", "mean")
    if agg not in AGGREGATIONS:
        raise ConfigError(path, f"{key}.aggregation", f"expected one of {sorted(AGGREGATIONS)}, got {agg!r}")
    rng = entry.get("range")
    if rng is not None:
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, (int, float)) for x in rng) and rng[0] < rng[1]):
            raise ConfigError(path, f"{key}.range", "expected [low, high] with low < high")
        rng = (float(rng[0]), float(rng[1]))
    normal = entry.get("normal")
    if normal is not None:
        if not (isinstance(normal, list) and len(normal) == 2 and normal[0] < normal[1]):
            raise ConfigError(path, f"{key}.normal", "expected [low, high] with low < high")
        normal = (float(normal[0]), float(normal[1]))
    levels = entry.get("levels")
    if levels is not None:
        if entry["type"] != "categorical" or not isinstance(levels, list) or not levels:
            raise ConfigError(path, f"{key}.levels", "expected a non-empty list of levels, for a categorical variable only")
        levels = tuple(str(x) for x in levels)
    return Variable(
        name=name,
        label=str(entry["label"]),
        unit=str(entry.get("unit", "") or ""),
        kind=entry["kind"],
        type=entry["type"],
        source=entry["source"],
        range=rng,
        aggregation=agg,
        levels=levels,
        normal=normal,
    )


def extend_dictionary(dictionary: Dictionary, extra: dict | None, where: str, reserved: tuple[str, ...] = ()) -> Dictionary:
    """The dictionary plus a database's own variables (config ``databases.<name>.mapping.extra_variables``).

    A name already in the dictionary or among ``reserved`` (core contract columns) is refused.
    """
    if not extra:
        return dictionary
    out = dict(dictionary.variables)
    for name, entry in extra.items():
        key = f"{where}.{name}"
        if name in out or name in reserved:
            raise ConfigError("config", key, "already a variable of the data dictionary or a core column; choose another name")
        out[name] = parse_variable(name, entry, "config", key)
    return Dictionary(out)


def dictionary_yaml(dictionary: Dictionary) -> str:
    """The dictionary as ``variables.yaml`` text (the per-database dictionary written by ingest_contract)."""
    import yaml

    entries = {}
    for name, v in dictionary.variables.items():
        e = {"label": v.label, "unit": v.unit, "kind": v.kind, "type": v.type, "source": v.source}
        if v.range is not None:
            e["range"] = list(v.range)
        if v.source == "hourly" or v.aggregation != "mean":
            e["aggregation"] = v.aggregation
        if v.levels is not None:
            e["levels"] = list(v.levels)
        if v.normal is not None:
            e["normal"] = list(v.normal)
        entries[name] = e
    header = "# Data dictionary of this database: config/variables.yaml plus its mapping.extra_variables (written by rule ingest_contract).\n"
    return header + yaml.safe_dump({"variables": entries}, sort_keys=False, allow_unicode=True, width=200)
