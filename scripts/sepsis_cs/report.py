"""The report's summary page and the TRIPOD+AI checklist, built from the phases' headline numbers.

Every phase writes flat headline numbers to ``results/{database}/summary/{phase}.json`` (transfer:
``results/transfer/{source}__{target}/summary.json``).  :func:`summary_rst` turns them into the
front page of the Snakemake report (reStructuredText; each number links to the registered
output it summarises), and :func:`tripod_checklist` fills the TRIPOD+AI items the workflow can
answer, marking the others "to complete by the authors".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TO_COMPLETE = "to complete by the authors"


def load_summaries(paths: list[str]) -> dict[str, dict[str, dict]]:
    """``{database_or_pair: {phase: headline dict}}`` from summary file paths."""
    out: dict[str, dict[str, dict]] = {}
    for p in map(Path, paths):
        if not p.exists():
            continue
        data = json.loads(p.read_text(encoding="utf-8"))
        if p.parent.parent.name == "transfer":
            out.setdefault(f"transfer:{p.parent.name}", {})["transfer"] = data
        else:
            out.setdefault(p.parent.parent.name, {})[p.stem] = data
    return out


def fmt(value, digits: int = 3) -> str:
    """Number for display: ``NA`` for missing, ``suppressed`` never shows a small count."""
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NA"
        return f"{value:.{digits}f}"
    return str(value)


def _ci(d: dict, key: str) -> str:
    v = d.get(key)
    lo, hi = d.get(f"{key}_lo"), d.get(f"{key}_hi")
    if v is None:
        return "NA"
    if lo is None or hi is None:
        return fmt(v)
    return f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"


def _table(rows: list[tuple[str, ...]], header=("Quantity", "Value", "Source")) -> str:
    """An RST simple table; the last column may hold references such as ``Data_``."""
    if not rows:
        return ""
    n = len(header)
    rows = [tuple(r) + ("",) * (n - len(r)) for r in rows]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(n)]
    line = "  ".join("=" * w for w in widths)
    fmt_row = lambda r: "  ".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line, fmt_row(header), line, *(fmt_row(r) for r in rows), line]) + "\n"


# where each phase's numbers are shown in the report: (category, registered file)
SOURCES = {
    "cohort": ("Data", "cohort_summary.csv"),
    "attrition": ("Data", "attrition.csv"),
    "data_dictionary": ("Data", "data_dictionary.csv"),
    "analysis": ("Analysis", "table1.csv"),
    "overlap": ("Analysis", "positivity.csv"),
    "selection": ("Analysis", "selection_outcome.csv"),
    "selection_treatment": ("Analysis", "selection_treatment.csv"),
    "benefit": ("Supervised", "cate_evaluation.csv"),
    "clustering": ("Clustering", "evidence.png"),
    "supervised": ("Supervised", "metrics.csv"),
    "transfer": ("Transfer", "learning_curve.csv"),
    "target_trial": ("Target trial", "estimates.csv"),
}


def _src(phase: str) -> str:
    cat, name = SOURCES[phase]
    ref = f"`{cat}`_" if " " in cat else f"{cat}_"  # RST: a reference name with a space is quoted
    return f"{ref}: {name}"


def target_trial_section(summaries: dict[str, dict[str, dict]], k: int) -> list[str]:
    """The target-trial headline per database: emulated RD [CI], RR, the naive RDs beside it, ESS per arm.

    A database whose trial was not emulated gets its one-line reason.  ESS under ``k`` shows as ``<k``.
    """
    dbs = sorted(d for d in summaries if not d.startswith("transfer:") and "target_trial" in summaries[d])
    if not dbs:
        return []

    def ess(v) -> str:
        if not isinstance(v, (int, float)) or math.isnan(v):
            return "NA"
        return f"<{k}" if v < k else f"{v:.0f}"

    first = summaries[dbs[0]]["target_trial"]
    grace, days = first.get("grace_h", 24), first.get("followup_days", 28)
    rows, notes = [], []
    for db in dbs:
        t = summaries[db]["target_trial"]
        if t.get("randomised") and t.get("itt_rd") is not None:  # a randomised trial: its own ITT contrast
            truth = f"; truth {fmt(t['true_rd'])}" if t.get("true_rd") is not None else ""
            notes.append(f"- ``{db}``: randomised trial, intention-to-treat RD of {t.get('itt_outcome')} "
                         f"{_ci(t, 'itt_rd')}{truth} (no emulation needed)")
            continue
        if not t.get("emulated"):
            notes.append(f"- ``{db}``: {t.get('note') or 'not emulated'}")
            continue
        rows.append((
            db, _ci(t, "rd"), _ci(t, "rr"), fmt(t.get("naive_rd")), fmt(t.get("naive_iptw_rd")),
            f"{ess(t.get('ess_cs'))} / {ess(t.get('ess_no_cs'))}", fmt(t.get("true_rd")),
        ))
    parts = [
        "Target trial: early corticosteroids",
        "-----------------------------------",
        "",
        f"Per-protocol risk difference (RD) and ratio (RR) of death by day {days}, \"start a glucocorticoid within "
        f"{grace} h of time zero\" minus \"no glucocorticoid within {grace} h\", by clone-censor-weight with 95 % "
        f"bootstrap CIs ({_src('target_trial')}; protocol, sensitivity and weights in the same category; method "
        "and assumptions in docs/target-trial.md). Beside it, the naive contrasts the other phases rest on (CS within "
        "the CS window vs not, crude and with baseline IPTW), which carry immortal time and time-varying confounding. "
        "ESS: effective sample size of the uncensored clones per arm (CS / no CS); a small ESS means an unstable "
        "estimate. Truth: the simulator's per-protocol RD (simulated databases only).",
        "",
    ]
    if rows:
        parts.append(_table(rows, header=("Database", "Emulated RD [95 % CI]", "RR [95 % CI]", "Naive RD (crude)",
                                          "Naive RD (baseline IPTW)", "ESS (CS / no CS)", "Truth")))
    if notes:
        parts += ["Not emulated:", "", *notes, ""]
    return parts


def best_model(sup: dict) -> tuple[str | None, str]:
    """Name of the internal or external model with the highest AUROC, and its formatted CI."""
    aurocs = {
        k[len("auroc_"):]: v
        for k, v in sup.items()
        if k.startswith("auroc_") and not k.endswith(("_lo", "_hi")) and isinstance(v, (int, float)) and "_vs_" not in k
    }
    if not aurocs:
        return None, "NA"
    name = max(sorted(aurocs), key=lambda m: aurocs[m])
    return name, _ci(sup, f"auroc_{name}")


def table1_excerpt(table1, top: int = 10):
    """The first row (stay counts) and the ``top`` rows with the largest absolute unweighted SMD."""
    import polars as pl

    smd = pl.col("smd_unweighted").cast(pl.Float64, strict=False)
    ranked = (
        table1.with_row_index("_i")
        .filter(smd.is_not_null())
        .with_columns(smd.abs().alias("_a"))
        .sort(["_a", "_i"], descending=[True, False])
        .head(top)
        .sort("_i")
        .drop("_i", "_a")
    )
    return pl.concat([table1.head(1), ranked])


def frame_rst(df, columns: list[str], header: list[str]) -> str:
    """A polars frame (text cells) as an RST simple table; empty cells become '-'."""
    rows = [tuple((str(r[c]) if r[c] not in (None, "") else "-") for c in columns) for r in df.iter_rows(named=True)]
    return _table(rows, header=tuple(header))


def summary_rst(
    summaries: dict[str, dict[str, dict]], config: dict, links: dict[str, str] | None = None, tables: dict | None = None
) -> str:
    """Front page of the report: the target trial, cohort flow, Table 1, clusters, best models, CS benefit, transfer."""
    links = links or {}
    tables = tables or {}
    k = config.get("min_cell_count", 10)
    parts = [
        "ICU sepsis and corticosteroids: summary",
        "=======================================",
        "",
        f"Outcome: ``{config.get('outcome')}``. CS-treated = systemic corticosteroid started "
        f"{config.get('cs_window', {}).get('start_h', 0)}-{config.get('cs_window', {}).get('end_h', 24)} h after time zero. "
        f"Prediction horizon: {config.get('prediction_horizon_h')} h. Seed: {config.get('seed')}. "
        f"Counts under {k} are suppressed (NA). Every number below comes from "
        "``results/<database>/summary/<phase>.json``; the named output holds the details.",
        "",
    ]
    parts += target_trial_section(summaries, k)
    for db in sorted(d for d in summaries if not d.startswith("transfer:")):
        s = summaries[db]
        title = f"Database ``{db}``"
        parts += [title, "-" * len(title), ""]
        rows: list[tuple[str, str]] = []
        c = s.get("cohort", {})
        if c:
            for key, label in (
                ("n_icu_stays_raw", "ICU stays before selection"),
                ("n_sepsis", "Septic stays"),
                ("n_stays", "Stays analysed"),
                ("n_cs", "CS-treated"),
                ("n_no_cs", "Not CS-treated"),
                ("mortality_cs", "Crude mortality, CS"),
                ("mortality_no_cs", "Crude mortality, no CS"),
            ):
                if key in c:
                    rows.append((label, fmt(c[key]), _src("attrition" if key in ("n_icu_stays_raw", "n_sepsis") else "cohort")))
            if c.get("resolution", "hourly") != "hourly":
                rows.append(("Time resolution of the series", str(c["resolution"]), _src("cohort")))
            absent = [*c.get("variables_absent_static", []), *c.get("variables_absent_hourly", [])]
            if absent:  # said, not imputed: these variables are left out of every analysis of the database
                rows.append(("Dictionary variables not recorded", f"{len(absent)}: {', '.join(absent)}", _src("data_dictionary")))
        a = s.get("analysis", {})
        if a:
            for key, label in (
                ("max_abs_smd_unweighted", "Max abs SMD (Table 1), unweighted"),
                ("max_abs_smd_weighted", "Max abs SMD (Table 1), IPTW"),
                ("share_outside_overlap", "Share outside propensity overlap"),
                ("n_selected_outcome", "Variables selected for the outcome"),
                ("n_selected_treatment", "Variables selected for CS assignment"),
            ):
                if key in a:
                    src = {
                        "share_outside_overlap": "overlap",
                        "n_selected_outcome": "selection",
                        "n_selected_treatment": "selection_treatment",
                    }.get(key, "analysis")
                    rows.append((label, fmt(a[key]), _src(src)))
        cl = s.get("clustering", {})
        if cl:
            for pop in ("pooled", "cs", "no_cs"):
                if f"chosen_k_{pop}" in cl:
                    rows.append((f"Clusters chosen ({pop})", fmt(cl[f"chosen_k_{pop}"]), _src("clustering")))
            if cl.get("null_p_pooled") is not None:
                rows.append(("Null-reference p, pooled (k = 1 unless < alpha)", fmt(cl["null_p_pooled"]), _src("clustering")))
            if cl.get("k_reason_pooled"):
                rows.append(("Why this k (pooled)", cl["k_reason_pooled"], _src("clustering")))
            if cl.get("pac_pooled") is not None:
                rows.append(("PAC of the pooled solution", fmt(cl["pac_pooled"]), _src("clustering")))
            if "ari_truth_pooled_chosen" in cl:
                rows.append(("ARI with the true phenotypes (simulator)", fmt(cl["ari_truth_pooled_chosen"]), _src("clustering")))
        sup = s.get("supervised", {})
        if sup:
            if "n_risk_cohort" in sup:
                rows.append((f"Stays at risk at the prediction horizon ({fmt(sup.get('landmark_h'), 0)} h; risk models)",
                             fmt(sup["n_risk_cohort"]), _src("supervised")))
            name, ci = best_model(sup)
            if name:
                rows.append((f"Best model by AUROC: {name}", ci, _src("supervised")))
            if "ate_aipw" in sup:
                rows.append(("Average CS benefit (risk reduction, AIPW, held-out)", _ci(sup, "ate_aipw"), _src("benefit")))
            if "heterogeneity_detected" in sup:
                lr = sup.get("primary_learner", "")
                rows.append((f"Heterogeneity of absolute benefit ({lr}, AUTOC test)",
                             "detected" if sup["heterogeneity_detected"] else "no heterogeneity detected", _src("benefit")))
                rows.append((f"Effect modification beyond baseline risk ({lr}, BLP test)",
                             "detected" if sup.get("effect_modification_detected") else "no heterogeneity detected", _src("benefit")))
                # simulated databases only (validation against the truth): what the intervals really cover
                alpha = config.get("supervised", {}).get("cate", {}).get("alpha", 0.05)
                nominal = f"nominal {100 * (1 - alpha):g} %"
                for key, label in (
                    (f"gates_coverage_truth_{lr}", f"GATES intervals covering the true group effect (simulator; {nominal})"),
                    (f"cate_interval_coverage_truth_{lr}", f"Per-stay intervals covering the true effect (simulator; {nominal}, no coverage claimed)"),
                ):
                    if sup.get(key) is not None:
                        rows.append((label, fmt(sup[key]), _src("benefit")))
            if sup.get("effect_modification_detected"):
                for key, label in (
                    ("share_cs_sensitive", "Share in CS-sensitive groups (GATES, Holm)"),
                    ("share_possibly_harmed", "Share in possibly harmed groups (GATES, Holm)"),
                    ("share_effect_not_shown", "Share in groups without a shown effect"),
                ):
                    if key in sup:
                        rows.append((label, fmt(sup[key]), _src("benefit")))
            elif "heterogeneity_detected" in sup:
                rows.append(("Benefit classes", "none declared", _src("benefit")))
        parts.append(_table(rows))
        t = tables.get(db, {})
        if "attrition" in t:
            parts += ["Cohort flow (Data_: attrition.csv):", ""]
            parts.append(frame_rst(t["attrition"], ["step", "n_stays", "n_excluded"], ["Step", "Stays", "Excluded"]))
        if "table1" in t:
            parts += [
                "Table 1 by CS group, the first row and the 10 most imbalanced variables before weighting "
                "(full table: Analysis_: table1.csv; SMD = standardised mean difference, IPTW = weighted):",
                "",
            ]
            parts.append(
                frame_rst(
                    table1_excerpt(t["table1"]),
                    ["variable", "level", "cs", "no_cs", "smd_unweighted", "smd_iptw"],
                    ["Variable", "Level", "CS", "No CS", "SMD", "SMD IPTW"],
                )
            )
        descs = [(key, v) for key, v in sorted(cl.items()) if key.startswith("description_pooled_")]
        if descs:
            parts += ["Pooled clusters:", ""]
            parts += [f"- cluster {key.rsplit('_', 1)[-1]}: {v}" for key, v in descs]
            parts.append("")
    pairs = sorted(d for d in summaries if d.startswith("transfer:"))
    if pairs:
        parts += ["Transfer learning", "-----------------", ""]
        rows = []
        for p in pairs:
            t = summaries[p]["transfer"]
            pair = p.split(":", 1)[1].replace("__", " -> ")
            rows.append((f"{pair}: strategy picked by inner validation (n=200)", fmt(t.get("best_strategy_n200")), _src("transfer")))
            rows.append((f"{pair}: AUROC gain vs target-only (n=200; corrected 95% CI over seeds)", _ci(t, "gain_best_vs_target_only_n200"), _src("transfer")))
            if "gain_lupi_early" in t:
                rows.append((f"{pair}: gain of privileged information (early)", fmt(t.get("gain_lupi_early")), _src("transfer")))
        parts.append(_table(rows))
    if links:
        parts += ["Where the numbers come from", "---------------------------", ""]
        parts += [f"- {label}: {name}_" for label, name in links.items()]
        parts.append("")
    return "\n".join(parts) + "\n"


def tripod_checklist(summaries: dict[str, dict[str, dict]], config: dict) -> list[dict]:
    """TRIPOD+AI items with what the workflow knows; others marked for the authors."""
    dbs = sorted(d for d in summaries if not d.startswith("transfer:"))
    types = {d: config.get("databases", {}).get(d, {}).get("type", "?") for d in dbs}
    sup = {d: summaries[d].get("supervised", {}) for d in dbs}
    models = sorted(
        {k[len("auroc_"):] for s in sup.values() for k in s if k.startswith("auroc_") and not k.endswith(("_lo", "_hi"))}
    )
    cohort = {d: summaries[d].get("cohort", {}) for d in dbs}

    def item(section, number, topic, answer):
        return {"section": section, "item": number, "topic": topic, "answer": answer or TO_COMPLETE}

    items = [
        item("Title/abstract", "1-2", "Title and structured abstract", None),
        item("Introduction", "3-4", "Background and objectives", None),
        item("Methods", "5", "Data source", "; ".join(f"{d} ({types[d]})" for d in dbs) or None),
        item("Methods", "6", "Participants (eligibility, time zero)",
             f"adult septic ICU stays; time zero per contract column `time_zero`; CS window "
             f"{config.get('cs_window', {}).get('start_h', 0)}-{config.get('cs_window', {}).get('end_h', 24)} h"),
        item("Methods", "7", "Data preparation", "contract validation (docs/data-contract.md); plausibility ranges from config/variables.yaml; values outside set missing or rejected"),
        item("Methods", "8", "Outcome", f"{config.get('outcome')} (binary), as recorded by each database"),
        item("Methods", "9", "Predictors",
             f"static covariates and summaries of hourly variables up to {config.get('prediction_horizon_h')} h after time zero; selection: features = {config.get('features')}"
             + (" (re-run inside each outer training fold)" if config.get("features") == "selected" else "")),
        item("Methods", "10", "Sample size", "; ".join(
            f"{d}: {fmt(cohort[d].get('n_stays'))} stays" + (f", {fmt(sup[d]['n_risk_cohort'])} at risk at the prediction horizon (landmark)" if "n_risk_cohort" in sup[d] else "")
            for d in dbs) or None),
        item("Methods", "11", "Missing data", "median imputation with missingness indicators (numeric), most frequent (categorical), fitted within training folds"),
        item("Methods", "12", "Analytical methods (model types, tuning)",
             ("internal models: " + ", ".join(m for m in models)) if models else None),
        item("Methods", "12e", "Validation", "patient-level nested cross-validation; bootstrap 95% CIs" if models else None),
        item("Methods", "13", "Class imbalance", None),
        item("Methods", "14", "Fairness", None),
        item("Methods", "15", "Model output", "predicted probability of the outcome; CS benefit as absolute risk difference" if models else None),
        item("Methods", "16", "Training vs evaluation differences", None),
        item("Methods", "17", "Ethics", None),
        item("Open science", "18", "Funding, conflicts, protocol, registration", None),
        item("Open science", "18e", "Data and code availability", "workflow code and configuration in this repository; data per database licence"),
        item("Patient and public involvement", "19", "Patient and public involvement", None),
        item("Results", "20", "Participants (flow, characteristics)",
             "; ".join(f"{d}: {fmt(cohort[d].get('n_cs'))} CS / {fmt(cohort[d].get('n_no_cs'))} no CS" for d in dbs) or None),
        item("Results", "23", "Model performance (discrimination, calibration)",
             "; ".join(
                 f"{d} {m}: AUROC {_ci(sup[d], 'auroc_' + m)}, calibration slope {fmt(sup[d].get('calibration_slope_' + m))}"
                 for d in dbs for m in models if f"auroc_{m}" in sup[d]
             ) or None),
        item("Results", "23b", "Subgroup performance", "per CS group and per cluster: see Supervised section" if models else None),
        item("Discussion", "25-27", "Interpretation, limitations, usability", None),
    ]
    return items


def checklist_html(items: list[dict]) -> str:
    import html

    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(it[c]))}</td>" for c in ("section", "item", "topic", "answer")) + "</tr>"
        for it in items
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>TRIPOD+AI checklist</title>"
        "<style>body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top}th{background:#eee}</style></head><body>"
        "<h1>TRIPOD+AI checklist (filled by the workflow where it knows the answer)</h1>"
        "<table><tr><th>Section</th><th>Item</th><th>Topic</th><th>Answer</th></tr>"
        f"{rows}</table></body></html>\n"
    )
