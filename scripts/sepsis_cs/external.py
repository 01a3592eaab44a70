"""Fitted external models: the lab's own scikit-learn pipelines (skops) or ONNX graphs applied to a database.

A fitted model enters the config as an ``external_models`` entry with ``model:`` (a ``.skops`` or
``.onnx`` file) and a feature mapping (model input name -> a ``stay_features`` / cohort column,
optional named unit conversion, level map and default).  The rule ``external_model_apply`` turns it
into an ordinary prediction file per database (``stay_id, score, name``), which the supervised phase
evaluates like the lab's prediction files.  Nothing here ever unpickles a file:

* :func:`check_model_file` -- refuses ``.pkl/.pickle/.joblib/...`` and any file whose bytes are a
  pickle or a compressed stream (joblib's format), before anything is read by a loader;
* :func:`load_model` -- a :data:`LOADERS` registry: skops with its untrusted-type audit (only the
  types skops trusts, :data:`SAFE_TYPES` and the entry's ``trusted_types``), or onnxruntime (a
  protobuf graph of declared operators; no code is loaded);
* :func:`parse_inputs`, :data:`CONVERSIONS` -- the mapping and its named unit conversions;
* :func:`design_inputs`, :func:`apply_model` -- the model's inputs from a database's stay features,
  stays that cannot be applied (a mapped input missing, no default) counted and left out, never
  imputed behind the user's back; the output checked to be a probability;
* :func:`parse_entries` -- the config entries checked when the workflow is parsed (one line each);
* :func:`across_databases` -- the model's metrics on every database of the run, side by side.

Every error is a one-line :class:`~sepsis_cs.errors.UserInputError` / ``ConfigError``.  The module
imports only the standard library at load time (the workflow imports it while parsing the config).
"""

from __future__ import annotations

import difflib
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UserInputError

# ----------------------------------------------------------------------------- safety
#: suffixes of pickle-based formats: never loaded
PICKLE_SUFFIXES = (".pkl", ".pickle", ".p", ".joblib", ".jbl", ".sav", ".dill", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".rds", ".rda", ".rdata")
#: file magic of compressed streams (joblib writes zlib/gzip/bz2/xz/lz4-compressed pickles)
COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x04\x22\x4d\x18": "lz4",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"x\x01": "zlib",
    b"x\x5e": "zlib",
    b"x\x9c": "zlib",
    b"x\xda": "zlib",
}
#: formats by file suffix
FORMATS = {".skops": "skops", ".onnx": "onnx"}
#: types trusted on top of skops' own defaults.  numpy.dtype only: skops rebuilds it from an empty
#: array read by numpy's own .npy reader with pickling disabled (no constructor runs, no index is
#: followed); scikit-learn 1.9 stores one in every SimpleImputer.  Tree-based estimators
#: (sklearn.tree._tree.Tree, HistGradientBoosting's TreePredictor) stay refused unless the user
#: lists them: skops explains that a crafted file of those types can crash the process.
SAFE_TYPES = ("numpy.dtype",)
SAFE_EXPORT = "export it with skops (skops.io.dump(model, 'model.skops')) or as ONNX (skl2onnx.to_onnx); see docs/external-models.md"


def looks_like_pickle(head: bytes) -> str | None:
    """What kind of unsafe serialisation the first bytes of a file show, or ``None``."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a pickle (protocol {head[1]})"
    for magic, kind in COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            return f"a {kind}-compressed stream (joblib's format: a compressed pickle)"
    return None


def check_model_file(path: str | Path, fmt: str | None = None, where: str = "model") -> str:
    """Refuse pickles and unknown formats before any loader reads the file; return ``skops`` or ``onnx``.

    A file is accepted as skops only if it is a zip archive with the ``schema.json`` skops writes
    and without pickled members; as ONNX only if it is not a zip or pickle (onnxruntime then parses
    the protobuf).  ``fmt`` overrides the suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UserInputError(path, None, f"refused: {suffix} files are pickles and unpickling runs arbitrary code; {SAFE_EXPORT}")
    if not path.is_file():
        raise UserInputError(path, None, f"{where} file does not exist")
    with path.open("rb") as fh:
        head = fh.read(16)
    if not head:
        raise UserInputError(path, None, "file is empty; expected a .skops or .onnx model")
    unsafe = looks_like_pickle(head)
    if unsafe:
        raise UserInputError(path, None, f"refused: the file's content is {unsafe}, never loaded; {SAFE_EXPORT}")
    fmt = fmt or FORMATS.get(suffix)
    if fmt is None:
        raise UserInputError(path, None, f"unknown model format {suffix or '(no suffix)'}; expected a .skops or .onnx file (or set format: skops | onnx)")
    is_zip = head.startswith(b"PK\x03\x04")
    if fmt == "skops":
        if not is_zip:
            raise UserInputError(path, None, "not a skops file (expected the zip archive skops.io.dump writes)")
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            raise UserInputError(path, None, "not a readable skops file (corrupt zip archive)") from None
        if "schema.json" not in names:
            raise UserInputError(path, None, "not a skops file (no schema.json in the archive)")
        # skops stores arrays as .npy members read with allow_pickle=False; a pickled member means another format
        pickled = [n for n in names if Path(n).suffix.lower() in (".pkl", ".pickle", ".joblib", ".dill")]
        if pickled:
            raise UserInputError(path, None, f"refused: the archive holds pickled members ({pickled[0]}); {SAFE_EXPORT}")
    elif fmt == "onnx" and is_zip:
        raise UserInputError(path, None, "not an ONNX model (the file is a zip archive; a skops file should end in .skops)")
    return fmt


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class Conversion:
    """``model value = contract value * scale + offset``."""

    scale: float
    offset: float
    description: str


#: named unit conversions, from the contract unit (config/variables.yaml) to the model's unit
CONVERSIONS: dict[str, Conversion] = {
    "celsius_to_fahrenheit": Conversion(9 / 5, 32.0, "temperature degC -> degF"),
    "creatinine_mg_dl_to_umol_l": Conversion(88.42, 0.0, "creatinine mg/dL -> umol/L"),
    "bilirubin_mg_dl_to_umol_l": Conversion(17.104, 0.0, "bilirubin mg/dL -> umol/L"),
    "glucose_mg_dl_to_mmol_l": Conversion(1 / 18.016, 0.0, "glucose mg/dL -> mmol/L"),
    "lactate_mmol_l_to_mg_dl": Conversion(9.008, 0.0, "lactate mmol/L -> mg/dL"),
    "crp_mg_l_to_mg_dl": Conversion(0.1, 0.0, "C-reactive protein mg/L -> mg/dL"),
    "mmhg_to_kpa": Conversion(0.133322, 0.0, "pressure (e.g. PaO2/FiO2) mmHg -> kPa"),
    "kg_to_lb": Conversion(2.204623, 0.0, "weight kg -> lb"),
    "fraction_to_percent": Conversion(100.0, 0.0, "0-1 share -> percent"),
    "percent_to_fraction": Conversion(0.01, 0.0, "percent -> 0-1 share"),
    "per_l_to_per_ul": Conversion(1.0, 0.0, "10^9/L -> 10^3/uL (same number)"),
}

#: cohort columns a model input may never read: identifiers and what happens after the prediction time
FORBIDDEN_COLUMNS = {
    "stay_id": "an identifier",
    "patient_id": "an identifier",
    "time_zero": "an identifier of time zero",
    "database": "the database name",
    "hospital_mortality": "an outcome",
    "mortality_28d": "an outcome",
    "mortality_90d": "an outcome",
    "shock_reversal_7d": "an outcome",
    "icu_los_days": "an outcome",
    "death_h": "an outcome time",
    "icu_discharge_h": "an outcome time",
    "hospital_discharge_h": "an outcome time",
    "followup_end_h": "a follow-up time",
}


@dataclass(frozen=True)
class InputSpec:
    """One model input: the column it reads, an optional conversion, level map and default."""

    input: str
    column: str
    convert: str | None = None
    default: Any = None
    levels: dict | None = None


@dataclass(frozen=True)
class Mapping:
    specs: tuple[InputSpec, ...]
    ordered: bool  # the order is the user's (a list or a CSV), not a YAML mapping's key order
    source: str  # where the mapping was written, for messages

    @property
    def names(self) -> list[str]:
        return [s.input for s in self.specs]


def _spec(name: str, value, where: str) -> InputSpec:
    if isinstance(value, str):
        return InputSpec(name, value)
    if not isinstance(value, dict):
        raise ConfigError(where, name, "expected a column name or {column, convert, default, levels}")
    unknown = set(value) - {"input", "column", "convert", "default", "levels"}
    if unknown:
        raise ConfigError(where, name, f"unknown field {min(unknown)!r}; expected column, convert, default, levels")
    column = value.get("column")
    if not isinstance(column, str) or not column:
        raise ConfigError(where, name, "missing 'column' (the stay_features or cohort column this input reads)")
    convert = value.get("convert") or None
    if convert is not None and convert not in CONVERSIONS:
        raise ConfigError(where, name, f"unknown conversion {convert!r}; expected one of {', '.join(CONVERSIONS)}")
    levels = value.get("levels")
    if levels is not None and (not isinstance(levels, dict) or not levels):
        raise ConfigError(where, name, "levels must map each contract level to the model's value, e.g. {F: 0, M: 1}")
    default = value.get("default")
    if default is not None and not isinstance(default, (int, float, str)):
        raise ConfigError(where, name, "default must be a number or a text value")
    if default is not None and isinstance(default, str) and convert:
        raise ConfigError(where, name, "a text default cannot go with a unit conversion")
    return InputSpec(name, column, convert, default, {str(k): v for k, v in levels.items()} if levels else None)


def _read_mapping_file(path: Path) -> tuple[Any, bool]:
    """(raw mapping, ordered) from a CSV (input, column [, convert, default]) or YAML file."""
    import polars as pl

    from .io import read_table, read_yaml

    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        raw = read_yaml(path, "inputs mapping")
        if isinstance(raw, dict) and set(raw) == {"inputs"}:
            raw = raw["inputs"]
        return raw, isinstance(raw, list)
    if suffix != ".csv":
        raise ConfigError(path, None, "inputs_file must be a .csv (columns input, column [, convert, default]) or .yaml file")
    table = read_table(path)
    for col in ("input", "column"):
        if col not in table.columns:
            raise UserInputError(path, col, "missing column; expected columns input, column [, convert, default]")
    extra = set(table.columns) - {"input", "column", "convert", "default"}
    if extra:
        raise UserInputError(path, min(extra), "unknown column; expected input, column [, convert, default] (level maps need a YAML file)")
    rows = []
    for row in table.cast({c: pl.String for c in table.columns}).iter_rows(named=True):
        entry = {"input": row["input"], "column": row["column"]}
        if row.get("convert"):
            entry["convert"] = row["convert"]
        if row.get("default") not in (None, ""):
            d = row["default"]
            try:
                entry["default"] = float(d)
            except ValueError:
                entry["default"] = d
        rows.append(entry)
    return rows, True


def parse_inputs(inputs=None, inputs_file: str | Path | None = None, where: str = "external_models") -> Mapping:
    """The mapping of an entry: ``inputs`` (a mapping or an ordered list) or ``inputs_file``.

    A mapping ``{input: column}`` or ``{input: {column, convert, default, levels}}`` names the
    model's inputs; a list of ``{input, column, ...}`` (or a CSV file, one row per input) also
    gives their order, which a model taking one unnamed matrix needs.
    """
    if (inputs is None) == (inputs_file is None):
        raise ConfigError("config", where, "give exactly one of inputs (in the config) or inputs_file (a CSV or YAML file)")
    ordered = isinstance(inputs, list)
    source = where + ".inputs"
    raw = inputs
    if inputs_file is not None:
        path = Path(inputs_file)
        if not path.is_file():
            raise ConfigError("config", where + ".inputs_file", f"file {path} does not exist")
        raw, ordered = _read_mapping_file(path)
        source = str(path)
    specs = []
    if isinstance(raw, dict):
        specs = [_spec(str(k), v, source) for k, v in raw.items()]
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not item.get("input"):
                raise ConfigError(source, f"[{i}]", "each list item needs input and column, e.g. {input: age, column: age}")
            specs.append(_spec(str(item["input"]), item, source))
    else:
        raise ConfigError(source, None, "expected a mapping {model input: column} or a list of {input, column}")
    if not specs:
        raise ConfigError(source, None, "the mapping is empty; list the model's inputs")
    seen = set()
    for s in specs:
        if s.input in seen:
            raise ConfigError(source, s.input, "model input listed twice")
        seen.add(s.input)
        if s.column in FORBIDDEN_COLUMNS:
            raise ConfigError(source, s.input, f"column {s.column} is {FORBIDDEN_COLUMNS[s.column]}; a model input must be known at prediction time")
    return Mapping(tuple(specs), ordered, source)


# ----------------------------------------------------------------------------- config entries
@dataclass(frozen=True)
class FittedEntry:
    """A fitted-model entry of ``external_models`` after the parse-time checks."""

    index: int
    name: str
    model: str
    format: str
    databases: tuple[str, ...]
    fitted_on: str | None
    raw: dict = field(compare=False, repr=False)

    @property
    def mapping_file(self) -> list[str]:
        return [self.raw["inputs_file"]] if self.raw.get("inputs_file") else []


def parse_entries(entries: list[dict], analysed: list[str], databases: list[str], reserved: set[str]) -> tuple[list[dict], list[FittedEntry]]:
    """Split ``external_models`` into prediction files and fitted models, checking what the schema cannot.

    Checks: unique names not used by internal models or APACHE IV; an entry is either a prediction
    file (``database`` + ``path``) or a fitted model (``model``); model files exist and are not
    pickles; listed databases are in the run and analysed; the mapping parses.  Raises a one-line
    :class:`ConfigError` naming the key.
    """
    files, fitted, names = [], [], set()
    for i, e in enumerate(entries):
        key = f"external_models[{i}]"
        name = e["name"]
        if name in names or name in reserved:
            raise ConfigError("config", f"{key}.name", f"model name '{name}' used twice or by an internal model; give each model its own name")
        names.add(name)
        is_file, is_model = bool(e.get("path")), bool(e.get("model"))
        if is_file == is_model:
            raise ConfigError("config", key, "give either path and database (a prediction file) or model (a fitted .skops or .onnx model)")
        if is_file:
            if not e.get("database"):
                raise ConfigError("config", f"{key}.database", "required with path (the database whose stays the file predicts)")
            extra = sorted(set(e) & {"inputs", "inputs_file", "databases", "fitted_on", "format", "missing", "positive_class", "output", "trusted_types"})
            if extra:
                raise ConfigError("config", f"{key}.{extra[0]}", "only for fitted models (model:); a prediction file takes name, database, path")
            files.append(e)
            continue
        if e.get("database"):
            raise ConfigError("config", f"{key}.database", "a fitted model uses databases: [list] (default: every analysed database)")
        try:
            fmt = check_model_file(e["model"], e.get("format"))
        except UserInputError as exc:
            raise ConfigError("config", f"{key}.model", exc.one_line()) from None
        parse_inputs(e.get("inputs"), e.get("inputs_file"), key)
        dbs = e.get("databases") or list(analysed)
        for d in dbs:
            if d not in databases:
                raise ConfigError("config", f"{key}.databases", f"database '{d}' is not declared under databases")
            if d not in analysed:
                raise ConfigError("config", f"{key}.databases", f"database '{d}' has analyse: false; the model is evaluated only on analysed databases")
        # fitted_on may name a database outside this run (recorded only); inside it, its metrics are flagged apparent
        fitted.append(FittedEntry(i, name, e["model"], fmt, tuple(dict.fromkeys(dbs)), e.get("fitted_on"), e))
    return files, fitted


# ----------------------------------------------------------------------------- models
@dataclass
class ModelInput:
    name: str
    kind: str  # float | int | bool | string
    dtype: Any  # numpy dtype fed to the model


class LoadedModel:
    """A loaded model: ``inputs`` (None = names unknown, only a count), ``n_inputs``, ``matrix``
    (one unnamed input of ``n_inputs`` columns), :meth:`predict` -> probability of the outcome."""

    format = ""
    inputs: list[ModelInput] | None = None
    n_inputs: int | None = None
    matrix = False
    info: dict

    def predict(self, columns: dict, n: int):  # pragma: no cover - interface
        raise NotImplementedError


def _positive_index(classes, positive, path) -> int:
    hits = [i for i, c in enumerate(classes) if c == positive or str(c).lower() == str(positive).lower()]
    if len(classes) != 2:
        raise UserInputError(path, None, f"model output is not a binary probability: {len(classes)} classes {list(map(str, classes))[:5]}; expected 2")
    if len(hits) != 1:
        raise UserInputError(path, None, f"positive_class {positive!r} is not one of the model's classes {[str(c) for c in classes]}; set positive_class to the class meaning the outcome occurred")
    return hits[0]


class SkopsModel(LoadedModel):
    format = "skops"

    def __init__(self, est, path: Path, positive_class, info: dict):
        import numpy as np

        self.est, self.path, self.info = est, path, info
        if not hasattr(est, "predict_proba"):
            raise UserInputError(path, None, f"the model ({type(est).__name__}) has no predict_proba; expected a fitted classifier or pipeline giving probabilities")
        classes = getattr(est, "classes_", None)
        if classes is None:
            raise UserInputError(path, None, f"the model ({type(est).__name__}) is not fitted (no classes_); dump the fitted pipeline")
        self.pos = _positive_index(list(classes), positive_class, path)
        names = getattr(est, "feature_names_in_", None)
        self.n_inputs = getattr(est, "n_features_in_", None)
        if names is not None:
            self.inputs = [ModelInput(str(n), "any", None) for n in names]
            self.n_inputs = len(self.inputs)
        else:
            self.matrix = True
        self._np = np

    def predict(self, columns: dict, n: int):
        import pandas as pd

        np = self._np
        if self.inputs is not None:
            X = pd.DataFrame({k: columns[k] for k in (i.name for i in self.inputs)})
        else:
            cols = list(columns.values())
            X = np.column_stack([np.asarray(c, dtype=object if c.dtype == object else float) for c in cols]) if cols else np.empty((n, 0))
        try:
            p = self.est.predict_proba(X)
        except Exception as exc:  # noqa: BLE001 - the lab's pipeline can fail in many ways on our data
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise UserInputError(self.path, None, f"the model could not be applied to the mapped inputs ({type(exc).__name__}: {first})") from None
        p = np.asarray(p, dtype=float)
        if p.ndim != 2 or p.shape[1] != 2:
            raise UserInputError(self.path, None, f"model output is not a binary probability (predict_proba shape {p.shape})")
        return p[:, self.pos]


def load_skops(path: Path, trusted_types: list[str], positive_class=1, threads: int = 1, log=None) -> SkopsModel:
    """Load a skops file after its untrusted-type audit (never ``trusted=True``)."""
    import warnings

    import skops.io as sio
    from skops.io.exceptions import UNTRUSTED_TYPE_REASONS

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign archive
        raise UserInputError(path, None, f"not a readable skops file ({type(exc).__name__})") from None
    allowed = set(SAFE_TYPES) | set(trusted_types or [])
    refused = [t for t in untrusted if t not in allowed]
    if refused:
        if log:
            for t in refused:
                log.error("refused untrusted type %s%s", t, f": {UNTRUSTED_TYPE_REASONS[t]}" if t in UNTRUSTED_TYPE_REASONS else "")
        why = " (skops: a crafted tree can crash the process)" if any(t in UNTRUSTED_TYPE_REASONS for t in refused) else ""
        raise UserInputError(
            path, None,
            f"refused untrusted types {refused}{why}; only if you made this file or trust its source, list them under "
            "trusted_types of this external_models entry, or export the model to ONNX",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = sio.load(path, trusted=[t for t in untrusted])
        except Exception as exc:  # noqa: BLE001
            raise UserInputError(path, None, f"not a loadable skops file ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})") from None
    notes = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught})
    if log:
        for note in notes:
            log.warning("loading %s: %s", path.name, note)
    info = {"trusted_types_used": sorted(set(untrusted)), "load_warnings": notes, "estimator": type(est).__name__}
    return SkopsModel(est, path, positive_class, info)


#: onnxruntime tensor type -> (kind, numpy dtype name)
ONNX_TYPES = {
    "tensor(float)": ("float", "float32"),
    "tensor(double)": ("float", "float64"),
    "tensor(int64)": ("int", "int64"),
    "tensor(int32)": ("int", "int32"),
    "tensor(bool)": ("bool", "bool"),
    "tensor(string)": ("string", "object"),
}


class OnnxModel(LoadedModel):
    format = "onnx"

    def __init__(self, session, path: Path, positive_class, output: str | None, info: dict):
        import numpy as np

        self.session, self.path, self.info, self._np = session, path, info, np
        ins = session.get_inputs()
        parsed = []
        for i in ins:
            if i.type not in ONNX_TYPES:
                raise UserInputError(path, None, f"model input '{i.name}' has type {i.type}; supported: {', '.join(ONNX_TYPES)}")
            kind, dt = ONNX_TYPES[i.type]
            width = i.shape[1] if len(i.shape) >= 2 else 1
            parsed.append((i.name, kind, np.dtype(dt), width, len(i.shape)))
        if len(parsed) == 1 and parsed[0][3] != 1:
            name, kind, dt, width, _ = parsed[0]
            self.matrix, self.n_inputs = True, width if isinstance(width, int) else None
            self.inputs = None
            self._matrix_input = (name, kind, dt)
        else:
            bad = [p[0] for p in parsed if p[3] not in (1, None) or p[4] > 2]
            if bad:
                raise UserInputError(path, None, f"model input '{bad[0]}' is not one column; expected one input per feature ([N, 1]) or a single [N, k] matrix")
            self.inputs = [ModelInput(n, k, d) for n, k, d, _, _ in parsed]
            self._ranks = {n: r for n, _, _, _, r in parsed}
            self.n_inputs = len(parsed)
        self.output, self.positive = self._pick_output(output), positive_class

    def _pick_output(self, output):
        outs = self.session.get_outputs()
        names = [o.name for o in outs]
        if output is not None:
            if output not in names:
                raise UserInputError(self.path, None, f"output '{output}' not in the model's outputs {names}")
            return output
        prob = [o.name for o in outs if "prob" in o.name.lower()]
        if len(prob) == 1:
            return prob[0]
        floats = [o.name for o in outs if o.type in ("tensor(float)", "tensor(double)")]
        if len(floats) == 1:
            return floats[0]
        raise UserInputError(self.path, None, f"cannot tell which output is the probability among {names}; set output: <name>")

    def predict(self, columns: dict, n: int):
        np = self._np
        if self.matrix:
            name, kind, dt = self._matrix_input
            feed = {name: np.column_stack([_as_kind(v, kind, dt, name, self.path) for v in columns.values()]).astype(dt)}
        else:
            feed = {}
            for i in self.inputs:
                v = _as_kind(columns[i.name], i.kind, i.dtype, i.name, self.path)
                feed[i.name] = v.reshape(-1, 1) if self._ranks[i.name] == 2 else v
        try:
            out = self.session.run([self.output], feed)[0]
        except Exception as exc:  # noqa: BLE001
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise UserInputError(self.path, None, f"the model could not be run on the mapped inputs ({first})") from None
        if isinstance(out, list):  # skl2onnx ZipMap: one {class: probability} per row
            if not out or not isinstance(out[0], dict):
                raise UserInputError(self.path, None, f"output '{self.output}' is not a probability")
            pos = _positive_index(list(out[0]), self.positive, self.path)
            key = list(out[0])[pos]
            return np.array([row[key] for row in out], dtype=float)
        out = np.asarray(out, dtype=float)
        if out.ndim == 2 and out.shape[1] == 2:
            if str(self.positive) not in ("0", "1", "True", "true"):
                raise UserInputError(self.path, None, f"output '{self.output}' is a two-column probability matrix; positive_class must be 0 or 1 (its column)")
            col = 0 if str(self.positive) == "0" else 1
            rows = out.sum(axis=1)
            if np.isfinite(rows).all() and np.abs(rows - 1).max() > 1e-3:
                raise UserInputError(self.path, None, f"model output '{self.output}' is not a probability (rows sum to {rows.min():.3g}..{rows.max():.3g}, not 1)")
            return out[:, col]
        if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
            return out.reshape(-1)
        raise UserInputError(self.path, None, f"model output '{self.output}' has shape {out.shape}; expected [N], [N, 1] or [N, 2] probabilities")


def _as_kind(values, kind: str, dtype, name: str, path):
    import numpy as np

    v = np.asarray(values)
    if kind == "string":
        if v.dtype != object:
            raise UserInputError(path, None, f"model input '{name}' expects text (tensor(string)) but the mapped column holds numbers; map its levels to text")
        return np.array([("" if x is None else str(x)) for x in v], dtype=object)
    if v.dtype == object:
        raise UserInputError(path, None, f"model input '{name}' expects numbers but the mapped column holds text; map its levels to numbers (levels: {{F: 0, M: 1}})")
    if kind in ("int", "bool") and v.dtype.kind == "f" and not np.isfinite(v).all():
        raise UserInputError(path, None, f"model input '{name}' is {kind}-typed and cannot take missing values (missing: pass); give it a default")
    return v.astype(dtype)


def load_onnx(path: Path, trusted_types=None, positive_class=1, threads: int = 1, output: str | None = None, log=None) -> OnnxModel:
    """An onnxruntime session on the model's bytes (CPU, ``threads`` threads, no custom operators)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(Path(path).read_bytes(), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(exc)
        if "xternal data" in text:
            why = "weights in a separate file (external data) are not supported; save the model as one file"
        elif "protobuf" in text.lower() or "No graph" in text:
            why = "not an ONNX model (protobuf parsing failed)"
        else:
            why = f"onnxruntime cannot load it ({(text.splitlines() or [''])[0][:160]})"
        raise UserInputError(path, None, why) from None
    meta = session.get_modelmeta()
    info = {"producer": meta.producer_name, "opset_domain": meta.domain, "graph": meta.graph_name}
    return OnnxModel(session, Path(path), positive_class, output, info)


#: model loaders by format
LOADERS = {"skops": load_skops, "onnx": load_onnx}


def load_model(path: str | Path, fmt: str | None = None, trusted_types=(), positive_class=1, threads: int = 1, output: str | None = None, log=None) -> LoadedModel:
    """Check the file (:func:`check_model_file`) then load it with its format's loader."""
    path = Path(path)
    fmt = check_model_file(path, fmt)
    if fmt == "onnx":
        return load_onnx(path, trusted_types, positive_class, threads, output, log)
    if output is not None:
        raise ConfigError("config", "external_models.output", "output is for ONNX models; a skops model gives predict_proba")
    return LOADERS[fmt](path, list(trusted_types or []), positive_class, threads, log)


# ----------------------------------------------------------------------------- applying a model
def order_inputs(model: LoadedModel, mapping: Mapping, path) -> list[InputSpec]:
    """The mapping's specs in the model's input order; a mismatch is a one-line error."""
    specs = {s.input: s for s in mapping.specs}
    if model.inputs is not None:
        wanted = [i.name for i in model.inputs]
        missing = [n for n in wanted if n not in specs]
        if missing:
            raise ConfigError(mapping.source, missing[0], f"model input has no mapping ({len(missing)} of {len(wanted)} unmapped; model inputs: {', '.join(wanted[:12])}{' ...' if len(wanted) > 12 else ''})")
        extra = [n for n in specs if n not in wanted]
        if extra:
            raise ConfigError(mapping.source, extra[0], f"not an input of the model (model inputs: {', '.join(wanted[:12])}{' ...' if len(wanted) > 12 else ''})")
        return [specs[n] for n in wanted]
    if model.n_inputs is not None and model.n_inputs != len(mapping.specs):
        raise ConfigError(mapping.source, None, f"the model takes {model.n_inputs} inputs, the mapping lists {len(mapping.specs)}")
    if len(mapping.specs) > 1 and not mapping.ordered:
        raise ConfigError(
            mapping.source, None,
            "the model takes one unnamed matrix, so the inputs' order matters: give inputs as a list of {input, column} or a CSV file, in the model's column order",
        )
    return list(mapping.specs)


def design_inputs(data, specs: list[InputSpec], missing: str, min_cell_count: int, known_variables: set[str] | None = None, where: str = "inputs"):
    """Model input columns from ``data`` (a polars frame of stay features and cohort columns).

    Returns ``(columns, applicable, coverage, notes)``: numpy arrays per model input (model units,
    defaults filled), a boolean mask of stays with every input (or ``missing == "pass"``), a
    per-input coverage table (counts under ``min_cell_count`` suppressed) and warnings.  A column
    absent from ``data`` is an error unless it names a dictionary variable (``known_variables``),
    when this database simply lacks it (all missing).
    """
    import numpy as np
    import polars as pl

    from .io import suppress_count

    n = data.height
    applicable = np.ones(n, dtype=bool)
    columns, rows, notes = {}, [], []
    for s in specs:
        if s.column not in data.columns:
            family = s.column.split("__")[0]
            if known_variables is not None and family in known_variables:
                notes.append(f"input {s.input}: column {s.column} absent from this database (all missing)")
                values = pl.Series(s.column, [None] * n, dtype=pl.Float64)
            else:
                close = difflib.get_close_matches(s.column, data.columns, n=3)
                hint = f"; close: {', '.join(close)}" if close else ""
                raise ConfigError(where, s.input, f"column {s.column} is in neither stay_features nor the cohort{hint}")
        else:
            values = data[s.column]
        if s.levels is not None:
            text = values.cast(pl.String)
            seen = set(text.drop_nulls().unique().to_list())
            unmapped = sorted(seen - set(s.levels))
            if unmapped:
                raise ConfigError(where, s.input, f"value(s) {unmapped[:3]} of column {s.column} have no entry in levels {s.levels}")
            mapped = [s.levels[v] if v is not None else None for v in text.to_list()]
            if all(isinstance(v, (int, float, bool)) or v is None for v in mapped):
                values = pl.Series(s.column, mapped, dtype=pl.Float64, strict=False)
            else:
                values = pl.Series(s.column, [None if v is None else str(v) for v in mapped], dtype=pl.String)
        numeric = values.dtype.is_numeric() or values.dtype == pl.Boolean
        if numeric:
            arr = values.cast(pl.Float64).to_numpy().astype(float)
            miss = ~np.isfinite(arr)
            if s.convert:
                c = CONVERSIONS[s.convert]
                arr = arr * c.scale + c.offset
        else:
            if s.convert:
                raise ConfigError(where, s.input, f"conversion {s.convert} needs a numeric column; {s.column} holds text")
            arr = np.array(values.cast(pl.String).to_list(), dtype=object)
            miss = np.array([v is None for v in arr], dtype=bool)
        n_missing = int(miss.sum())
        n_default = 0
        if s.default is not None and n_missing:
            if numeric and isinstance(s.default, str):
                raise ConfigError(where, s.input, f"text default {s.default!r} for numeric column {s.column}")
            arr = arr.astype(object) if not numeric else arr
            arr[miss] = s.default if not numeric else float(s.default)
            n_default = n_missing
        elif n_missing and missing == "exclude":
            applicable &= ~miss
        columns[s.input] = arr
        rows.append(
            {
                "input": s.input,
                "column": s.column,
                "convert": s.convert or "",
                "default": "" if s.default is None else str(s.default),
                "n_missing": suppress_count(n_missing, min_cell_count),
                "n_default_used": suppress_count(n_default, min_cell_count),
                "n_missing_passed": suppress_count(n_missing if (n_missing and s.default is None and missing == "pass") else 0, min_cell_count),
            }
        )
    coverage = pl.DataFrame(rows, schema={"input": pl.String, "column": pl.String, "convert": pl.String, "default": pl.String, "n_missing": pl.Int64, "n_default_used": pl.Int64, "n_missing_passed": pl.Int64})
    return columns, applicable, coverage, notes


def model_data(features, cohort):
    """Stay features plus the cohort columns they lack (one row per cohort stay, sorted by stay_id)."""
    import polars as pl

    feats = features.with_columns(pl.col("stay_id").cast(pl.String))
    extra = [c for c in cohort.columns if c not in feats.columns and c not in FORBIDDEN_COLUMNS]
    coh = cohort.select(pl.col("stay_id").cast(pl.String), *extra)
    return coh.join(feats, on="stay_id", how="left").sort("stay_id")


def check_probabilities(p, path) -> None:
    import numpy as np

    p = np.asarray(p, dtype=float)
    if not np.isfinite(p).all():
        raise UserInputError(path, None, f"model output has {int((~np.isfinite(p)).sum())} non-finite values; expected probabilities (impute inside the model, or set defaults)")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise UserInputError(path, None, f"model output is not a probability (range {p.min():.3g}..{p.max():.3g}); export predict_proba, not a score or logit")


def apply_model(model: LoadedModel, data, mapping: Mapping, name: str, missing: str = "exclude", min_cell_count: int = 10, known_variables=None):
    """Predictions of ``model`` for every stay of ``data`` where it can be applied.

    Returns ``(predictions, coverage, counts, notes)``: a polars frame ``stay_id, score, name`` of the
    applied stays, the per-input coverage table, ``n_stays, n_applied, n_not_applicable`` (raw
    counts: the caller suppresses what it publishes) and warnings.
    """
    import numpy as np
    import polars as pl

    specs = order_inputs(model, mapping, model.path)
    columns, ok, coverage, notes = design_inputs(data, specs, missing, min_cell_count, known_variables, mapping.source)
    ids = data["stay_id"].cast(pl.String).to_numpy()
    n_ok = int(ok.sum())
    if n_ok:
        p = model.predict({k: v[ok] for k, v in columns.items()}, n_ok)
        check_probabilities(p, model.path)
    else:
        p = np.empty(0)
    pred = pl.DataFrame({"stay_id": ids[ok].astype(str), "score": np.asarray(p, dtype=float)}, schema={"stay_id": pl.String, "score": pl.Float64}).with_columns(pl.lit(name).alias("name"))
    counts = {"n_stays": len(ids), "n_applied": n_ok, "n_not_applicable": int(len(ids) - n_ok), "inputs": [s.input for s in specs]}
    return pred, coverage, counts, notes


def application_summary(name: str, database: str, model: LoadedModel, path, counts: dict, apparent: bool, entry: dict, min_cell_count: int) -> dict:
    """What the application summary JSON publishes: counts suppressed under ``min_cell_count`` with
    complementary suppression (applied + not applicable = the published cohort size)."""
    from .io import suppress_count

    n_app, n_not = counts["n_applied"], counts["n_not_applicable"]
    s_app, s_not = suppress_count(n_app, min_cell_count), suppress_count(n_not, min_cell_count)
    if s_not is None and n_not:
        s_app = None
    if s_app is None and n_app:
        s_not = None
    return {
        "model": name,
        "database": database,
        "format": model.format,
        "file": Path(path).name,
        "sha256": sha256(path),
        "fitted_on": entry.get("fitted_on"),
        "apparent": bool(apparent),
        "n_stays": counts["n_stays"],
        "n_applied": s_app,
        "n_not_applicable": s_not,
        "missing": entry.get("missing", "exclude"),
        "inputs": counts["inputs"],
        **model.info,
    }


# ----------------------------------------------------------------------------- R: a logistic glm as ONNX
def glm_to_onnx(terms: list[str], estimates: list[float], opset: int = 17) -> bytes:
    """An ONNX logistic model ``p = 1 / (1 + exp(-(b0 + sum b_k x_k)))`` from a glm's coefficients.

    ``terms`` are R's coefficient names (``names(coef(fit))``), ``(Intercept)`` included; each other
    term becomes one named model input (``[N, 1]`` double), so the mapping names them (a dummy such
    as ``sexM`` maps ``sex`` with ``levels: {F: 0, M: 1}``).  Only main effects of the data's columns:
    interactions, splines or transformed terms (``:``, ``(``) must be computed as columns first or the
    model refitted in Python.  Needs the ``onnx`` package (installed with requirements.txt).
    """
    import numpy as np
    from onnx import TensorProto, checker, helper, numpy_helper

    if len(terms) != len(estimates) or not terms:
        raise ConfigError("coefficients", None, "expected one estimate per term")
    est = dict(zip(terms, estimates))
    if len(est) != len(terms):
        raise ConfigError("coefficients", None, "a term is listed twice")
    intercept = float(est.pop("(Intercept)", 0.0))
    bad = [t for t in est if any(ch in t for ch in ":()^*/ ")]
    if bad:
        raise ConfigError("coefficients", bad[0], "only main-effect terms are converted; compute interactions or transforms as data columns, or refit in Python")
    if not all(np.isfinite(v) for v in est.values()) or not np.isfinite(intercept):
        raise ConfigError("coefficients", None, "an estimate is missing or not finite (an aliased term? drop it)")
    names = list(est)
    w = np.array([[est[t]] for t in names], dtype=np.float64)
    nodes = [
        helper.make_node("Concat", names, ["X"], axis=1),
        helper.make_node("MatMul", ["X", "W"], ["Z0"]),
        helper.make_node("Add", ["Z0", "B"], ["Z"]),
        helper.make_node("Sigmoid", ["Z"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "glm_logit",
        [helper.make_tensor_value_info(t, TensorProto.DOUBLE, [None, 1]) for t in names],
        [helper.make_tensor_value_info("probability", TensorProto.DOUBLE, [None, 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([intercept]), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="sepsis_cs.glm_to_onnx")
    checker.check_model(model)
    return model.SerializeToString()


# ----------------------------------------------------------------------------- across databases
METRICS = ("auroc", "auprc", "brier", "calibration_intercept", "calibration_slope")


def across_databases(name: str, rows: list[tuple[str, dict, Any]], fitted_on: str | None, min_cell_count: int):
    """One row per database: applicability and the model's metrics with CIs (from ``metrics.csv``).

    ``rows`` holds ``(database, application summary, metrics table)``; the metrics table is the
    supervised phase's ``metrics.csv`` (polars).  The best internal model's AUROC (out-of-fold, same
    database) is given for reference.
    """
    import polars as pl

    from .io import suppress_count

    out = []
    for db, app, metrics in rows:
        ext = metrics.filter(pl.col("model") == name)
        internal = metrics.filter(pl.col("kind") == "internal").sort(["auroc", "model"], descending=[True, False])
        row = {
            "database": db,
            "apparent": db == fitted_on,
            "n_stays": app["n_stays"],
            "n_applied": app["n_applied"],
            "n_not_applicable": app["n_not_applicable"],
        }
        if ext.height:
            r = ext.row(0, named=True)
            row.update({"n": suppress_count(r["n"], min_cell_count), "events": suppress_count(r["events"], min_cell_count)})
            for m in METRICS:
                row[m], row[f"{m}_lo"], row[f"{m}_hi"] = r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")
        if internal.height:
            best = internal.row(0, named=True)
            row["best_internal_model"], row["best_internal_auroc"] = best["model"], best["auroc"]
        out.append(row)
    schema = {"database": pl.String, "apparent": pl.Boolean, "n_stays": pl.Int64, "n_applied": pl.Int64, "n_not_applicable": pl.Int64, "n": pl.Int64, "events": pl.Int64}
    for m in METRICS:
        schema.update({m: pl.Float64, f"{m}_lo": pl.Float64, f"{m}_hi": pl.Float64})
    schema.update({"best_internal_model": pl.String, "best_internal_auroc": pl.Float64})
    return pl.DataFrame(out, schema=schema)


def across_databases_summary(table) -> dict:
    """Flat headline numbers: ``<metric>_<database>`` (with ``_lo``/``_hi``), applied counts, apparent flags."""
    out = {}
    for row in table.iter_rows(named=True):
        db = row["database"]
        out[f"apparent_{db}"] = row["apparent"]
        out[f"n_applied_{db}"] = row["n_applied"]
        out[f"n_not_applicable_{db}"] = row["n_not_applicable"]
        for m in METRICS:
            for suffix in ("", "_lo", "_hi"):
                out[f"{m}_{db}{suffix}"] = row.get(f"{m}{suffix}")
    return out


def plot_across_databases(table, name: str):
    """AUROC and Brier score with 95% CIs per database (apparent performance drawn hollow)."""
    from .plotting import PALETTE, figure

    fig, axes = figure(10.0, 1.4 + 0.5 * max(1, table.height), ncols=2, sharey=True)
    ys = list(range(table.height))[::-1]
    labels = []
    for y, row in zip(ys, table.iter_rows(named=True)):
        note = " (apparent)" if row["apparent"] else ""
        if row.get("auroc") is None:
            note += " (not scored)"
        elif row.get("n_applied") is not None:
            note += f" n={row['n_applied']}"
        labels.append(f"{row['database']}{note}")
        for ax, metric in ((axes[0], "auroc"), (axes[1], "brier")):
            v, lo, hi = row.get(metric), row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
            if v is None:
                continue
            col = PALETTE[1] if row["apparent"] else PALETTE[0]
            lo, hi = (v if lo is None else lo), (v if hi is None else hi)
            ax.errorbar([v], [y], xerr=[[v - lo], [hi - v]], fmt="o", color=col, mfc="white" if row["apparent"] else col, capsize=3)
        if row.get("best_internal_auroc") is not None:
            axes[0].plot([row["best_internal_auroc"]], [y], marker="|", ms=14, color="grey")
    axes[0].set_yticks(ys, labels)
    axes[0].set_ylim(-0.6, table.height - 0.4)
    axes[0].axvline(0.5, color="black", lw=0.8, ls=":")
    axes[0].set(xlabel="AUROC", title=f"{name}: discrimination (grey tick: best internal model)")
    axes[1].set(xlabel="Brier score", title="overall accuracy (lower is better)")
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    return fig
