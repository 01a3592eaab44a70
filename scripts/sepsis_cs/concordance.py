"""Concordance of our cohort definitions with MIT-LCP mimic-code on a MIMIC-IV database.

Compares, per adult first ICU stay (our candidate stays), what the adapter computes
(``adapters.mimic_iv.concordance_frames``) with mimic-code's derived tables
(``reference.read_derived``): the Sepsis-3 flag (agreement, Cohen's kappa), the first
suspected-infection time, the Sepsis-3 infection and SOFA times, the hourly SOFA (total and each
component, 24-h worst, on the clock hours both define), the hourly norepinephrine-equivalent dose
and hourly invasive ventilation.  Only aggregate counts leave this module (small ones suppressed
by the caller).
"""

from __future__ import annotations

import polars as pl

COMPONENTS = {
    "sofa": "sofa_24hours",
    "sofa_resp": "respiration_24hours",
    "sofa_coag": "coagulation_24hours",
    "sofa_liver": "liver_24hours",
    "sofa_cardio": "cardiovascular_24hours",
    "sofa_cns": "cns_24hours",
    "sofa_renal": "renal_24hours",
}
#: tolerance of the dose comparison (ug/kg/min): mimic-code rounds doses to 4 decimals
DOSE_TOL = 1e-3
#: times that differ by less than this many seconds are equal (charting times are to the minute)
TIME_TOL_S = 60


def cohen_kappa(a: pl.Series, b: pl.Series) -> float | None:
    """Cohen's kappa of two boolean ratings of the same units (None when undefined)."""
    n = len(a)
    if n == 0:
        return None
    po = float((a == b).mean())
    pa, pb = float(a.mean()), float(b.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def _row(rows: list, measure: str, unit: str, n: int, agree: int, note: str = "") -> None:
    rows.append({"measure": measure, "unit": unit, "n_compared": n, "n_agree": agree, "share": (agree / n) if n else None, "note": note})


def _abs(frame: pl.DataFrame, stays: pl.DataFrame, col: str, name: str) -> pl.DataFrame:
    """Hours of the stay -> timestamps (origin + hours)."""
    return frame.join(stays.select("stay_id", "origin"), on="stay_id").with_columns(
        (pl.col("origin") + pl.duration(seconds=(pl.col(col) * 3600).round(0).cast(pl.Int64))).alias(name)
    )


def _same_time(a: str, b: str) -> pl.Expr:
    return ((pl.col(a) - pl.col(b)).dt.total_seconds().abs() < TIME_TOL_S).fill_null(False)


def compare(ours: dict, ref: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, dict, dict]:
    """Returns ``(table, headline, detail)``: one row per measure (``measure, unit, n_compared,
    n_agree, share, note``), the headline numbers of ``summary/cohort.json`` and the Sepsis-3 2 x 2
    counts and SOFA differences for the figure."""
    stays = ours["stays"].select("stay_id", "origin")
    ids = stays["stay_id"]
    rows: list[dict] = []
    # ---- Sepsis-3 flag
    ref_sep = ref["sepsis3"].filter(pl.col("sepsis3").fill_null(False) & pl.col("stay_id").is_in(ids.implode()))
    flags = stays.select(
        "stay_id",
        pl.col("stay_id").is_in(ours["sep"]["stay_id"].implode()).alias("ours"),
        pl.col("stay_id").is_in(ref_sep["stay_id"].implode()).alias("ref"),
    )
    agree = int((flags["ours"] == flags["ref"]).sum())
    kappa = cohen_kappa(flags["ours"], flags["ref"])
    _row(rows, "Sepsis-3 (adult first stays)", "stays", flags.height, agree, f"kappa {kappa:.3f}" if kappa is not None else "")
    two = {
        "both": int((flags["ours"] & flags["ref"]).sum()),
        "ours_only": int((flags["ours"] & ~flags["ref"]).sum()),
        "ref_only": int((~flags["ours"] & flags["ref"]).sum()),
        "neither": int((~flags["ours"] & ~flags["ref"]).sum()),
    }
    # ---- first suspected infection of each stay
    si_ours = _abs(ours["si"].group_by("stay_id").agg(pl.col("si_h").min()), stays, "si_h", "t_ours")
    si_ref = (
        ref["suspicion_of_infection"].filter(pl.col("suspected_infection").fill_null(False) & pl.col("stay_id").is_in(ids.implode()))
        .group_by("stay_id").agg(pl.col("suspected_infection_time").min().alias("t_ref"))
    )
    si = stays.join(si_ours.select("stay_id", "t_ours"), on="stay_id", how="left").join(si_ref, on="stay_id", how="left")
    have = si.select(pl.col("t_ours").is_not_null().alias("o"), pl.col("t_ref").is_not_null().alias("r"))
    _row(rows, "suspected infection during the ICU stay", "stays", si.height, int((have["o"] == have["r"]).sum()))
    both = si.filter(pl.col("t_ours").is_not_null() & pl.col("t_ref").is_not_null())
    _row(rows, "first suspected-infection time (both have one)", "stays", both.height, int(both.select(_same_time("t_ours", "t_ref")).to_series().sum()))
    # ---- Sepsis-3 times of the stays septic in both
    s_ours = _abs(ours["sep"].select("stay_id", "si_h", (pl.col("sofa_h") + 1).alias("sofa_end_h")), stays, "si_h", "si_ours")
    s_ours = _abs(s_ours.drop("origin"), stays, "sofa_end_h", "sofa_ours")
    s = s_ours.join(ref_sep.select("stay_id", "suspected_infection_time", "sofa_time"), on="stay_id")
    _row(rows, "Sepsis-3 infection time (septic in both)", "stays", s.height, int(s.select(_same_time("si_ours", "suspected_infection_time")).to_series().sum()))
    _row(rows, "Sepsis-3 SOFA time (septic in both)", "stays", s.height, int(s.select(_same_time("sofa_ours", "sofa_time")).to_series().sum()))
    # ---- hourly SOFA on the clock hours both define
    f = ours["filled"].select("stay_id", "hour_icu", *COMPONENTS)
    f = _abs(f.with_columns((pl.col("hour_icu") + 1).cast(pl.Float64).alias("_e")), stays, "_e", "endtime").drop("_e", "origin")
    r = ref["sofa"].filter(pl.col("stay_id").is_in(ids.implode()))
    h = f.join(r, on=["stay_id", "endtime"], how="inner")
    sofa_diff = h.select((pl.col("sofa").cast(pl.Int32) - pl.col("sofa_24hours").cast(pl.Int32)).alias("diff"))["diff"]
    for ours_col, ref_col in COMPONENTS.items():
        eq = int(h.select((pl.col(ours_col).fill_null(0).cast(pl.Float64) == pl.col(ref_col).fill_null(0)).sum()).item())
        label = "hourly SOFA total (24-h worst)" if ours_col == "sofa" else f"hourly SOFA {ours_col.removeprefix('sofa_')}"
        _row(rows, label, "stay-hours", h.height, eq)
    hours = f.select("stay_id", "hour_icu", "endtime")
    # ---- hourly norepinephrine equivalent (highest total dose in the hour)
    ne_ref = _hourly_intervals(ref["norepinephrine_equivalent_dose"].filter(pl.col("stay_id").is_in(ids.implode())), hours, "norepinephrine_equivalent_dose")
    ne_ours = ours["observed"].filter(pl.col("norepinephrine_eq") > 0).select("stay_id", "hour_icu", pl.col("norepinephrine_eq").alias("ne_ours"))
    ne = hours.join(ne_ours, on=["stay_id", "hour_icu"], how="left").join(ne_ref.rename({"value": "ne_ref"}), on=["stay_id", "endtime"], how="left")
    ne = ne.filter(pl.col("ne_ours").is_not_null() | pl.col("ne_ref").is_not_null())
    ne_ok = int(ne.select(((pl.col("ne_ours").fill_null(0) - pl.col("ne_ref").fill_null(0)).abs() <= DOSE_TOL).sum()).item())
    _row(rows, "hourly norepinephrine equivalent (hours with a dose in either)", "stay-hours", ne.height, ne_ok, f"equal within {DOSE_TOL:g} ug/kg/min")
    # ---- hourly invasive ventilation (hours of the ICU stay)
    v_ref = _hourly_intervals(
        ref["ventilation"].filter((pl.col("ventilation_status") == "InvasiveVent") & pl.col("stay_id").is_in(ids.implode())).with_columns(pl.lit(1.0).alias("v")),
        hours, "v",
    )
    if "mechanical_ventilation" in ours["observed"].columns:
        v_ours = ours["observed"].filter(pl.col("mechanical_ventilation").is_not_null()).select("stay_id", "hour_icu", pl.col("mechanical_ventilation").alias("v_ours"))
        v = v_ours.join(hours, on=["stay_id", "hour_icu"]).join(v_ref.rename({"value": "v_ref"}), on=["stay_id", "endtime"], how="left")
        v_ok = int(v.select(((pl.col("v_ours") > 0) == pl.col("v_ref").is_not_null()).sum()).item())
        _row(rows, "hourly invasive ventilation (ICU hours)", "stay-hours", v.height, v_ok, f"{int((v['v_ours'] > 0).sum())} ventilated hours ours, {int(v['v_ref'].is_not_null().sum())} mimic-code")
    table = pl.DataFrame(rows, schema={"measure": pl.String, "unit": pl.String, "n_compared": pl.Int64, "n_agree": pl.Int64, "share": pl.Float64, "note": pl.String})
    sofa_share = table.filter(pl.col("measure") == "hourly SOFA total (24-h worst)")["share"].item()
    headline = {
        "sepsis3_agreement_mimic_code": round(agree / flags.height, 4) if flags.height else None,
        "sepsis3_kappa_mimic_code": round(kappa, 4) if kappa is not None else None,
        "sofa_hourly_exact_share_mimic_code": round(sofa_share, 4) if sofa_share is not None else None,
    }
    for m, key in (
        ("first suspected-infection time (both have one)", "suspected_infection_time_agreement_mimic_code"),
        ("hourly norepinephrine equivalent (hours with a dose in either)", "ne_hourly_agreement_mimic_code"),
        ("hourly invasive ventilation (ICU hours)", "ventilation_hourly_agreement_mimic_code"),
    ):
        v = table.filter(pl.col("measure") == m)["share"]
        headline[key] = round(v.item(), 4) if v.len() and v.item() is not None else None
    return table, headline, {"two_by_two": two, "sofa_diff": sofa_diff}


def _hourly_intervals(iv: pl.DataFrame, hours: pl.DataFrame, value: str) -> pl.DataFrame:
    """Highest ``value`` of the intervals ``[starttime, endtime]`` overlapping each clock hour
    ``(endtime - 1 h, endtime]`` of ``hours``: ``stay_id, endtime, value``."""
    if iv.height == 0:
        return pl.DataFrame(schema={"stay_id": pl.Int64, "endtime": pl.Datetime("us"), "value": pl.Float64})
    x = iv.select("stay_id", pl.col("starttime").alias("s"), pl.col("endtime").alias("e"), pl.col(value).alias("value")).join(hours.select("stay_id", "endtime"), on="stay_id")
    x = x.filter((pl.col("s") < pl.col("endtime")) & (pl.col("e") > pl.col("endtime") - pl.duration(hours=1)))
    return x.group_by("stay_id", "endtime").agg(pl.col("value").max())


def figure(table: pl.DataFrame, detail: dict, headline: dict, path, min_cell_count: int, title: str) -> None:
    """Agreement per measure (with the targets), the Sepsis-3 2 x 2 table (small counts suppressed)
    and the distribution of hourly SOFA differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import format_count

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [2.2, 1, 1.2]})
    t = table.filter(pl.col("share").is_not_null())
    ax = axes[0]
    y = list(range(t.height))[::-1]
    ax.barh(y, t["share"].to_list(), color="#4c72b0")
    ax.set_yticks(y, t["measure"].to_list(), fontsize=8)
    ax.set_xlim(0, 1.05)
    for yi, s in zip(y, t["share"].to_list()):
        ax.text(min(s, 1.0) + 0.005, yi, f"{s:.3f}", va="center", fontsize=7)
    for target, _lbl in ((0.95, "agreement target"), (0.90, "SOFA / kappa target")):
        ax.axvline(target, color="grey", ls=":", lw=1)
    ax.set_xlabel("share classified / valued alike")
    ax.set_title("agreement with mimic-code", fontsize=10)
    ax = axes[1]
    two = detail["two_by_two"]
    grid = [[two["both"], two["ours_only"]], [two["ref_only"], two["neither"]]]
    ax.imshow([[1, 0], [0, 1]], cmap="Blues", vmin=-1, vmax=2)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, format_count(grid[i][j], min_cell_count), ha="center", va="center", fontsize=12)
    ax.set_xticks([0, 1], ["mimic-code\nSepsis-3", "mimic-code\nnot"])
    ax.set_yticks([0, 1], ["ours\nSepsis-3", "ours\nnot"])
    k = headline.get("sepsis3_kappa_mimic_code")
    ax.set_title(f"Sepsis-3, kappa {k:.3f}" if k is not None else "Sepsis-3", fontsize=10)
    ax = axes[2]
    d = detail["sofa_diff"]
    if d.len():
        vc = d.value_counts().sort("diff")
        shown = [(int(v), int(n)) for v, n in vc.iter_rows() if n >= min_cell_count]
        ax.bar([v for v, _ in shown], [n for _, n in shown], color="#55a868")
        ax.set_yscale("log")
    ax.set_xlabel("hourly SOFA, ours - mimic-code (points)")
    ax.set_ylabel("stay-hours (bins < min_cell_count hidden)")
    s = headline.get("sofa_hourly_exact_share_mimic_code")
    ax.set_title(f"SOFA exact share {s:.3f}" if s is not None else "SOFA", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def public_table(table: pl.DataFrame, min_cell_count: int) -> pl.DataFrame:
    """The table for the report: counts under ``min_cell_count`` suppressed; when the disagreeing count
    is small, the agreeing count is withheld ("-") so that it cannot be derived (the share stays: it is
    the measure, reported as in ``summary/cohort.json``)."""
    from .io import format_count

    rows = []
    for r in table.iter_rows(named=True):
        n, a = r["n_compared"], r["n_agree"]
        # a small disagreeing count would follow from the two others: withhold the agreeing one then
        agree = "-" if 0 < n - a < min_cell_count else format_count(a, min_cell_count)
        rows.append(
            {
                "measure": r["measure"], "unit": r["unit"], "n_compared": format_count(n, min_cell_count),
                "n_agree": agree, "n_differ": format_count(n - a, min_cell_count),
                "share_agree": None if r["share"] is None else round(r["share"], 4), "note": r["note"],
            }
        )
    return pl.DataFrame(rows, schema={"measure": pl.String, "unit": pl.String, "n_compared": pl.String, "n_agree": pl.String, "n_differ": pl.String, "share_agree": pl.Float64, "note": pl.String})
