"""Target-trial emulation of early CS by clone-censor-weight (rule target_trial)."""

import logging

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs import randomised
from sepsis_cs import target_trial as tt
from sepsis_cs.io import format_count, read_parquet, run_script, savefig, write_csv, write_json
from sepsis_cs.plotting import figure

log = logging.getLogger("sepsis_cs")


def _placeholder_figure(text: str):
    fig, ax = figure(6.0, 1.6)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    return fig


def _skip(smk, note: str, summary: dict | None = None, estimates: pl.DataFrame | None = None) -> None:
    log.info(note)
    write_json(summary or {"emulated": False, "note": note}, smk.output.summary)
    one = pl.DataFrame({"note": [note]})
    for key in ("protocol", "estimates", "sensitivity", "weights"):
        write_csv(estimates if key == "estimates" and estimates is not None else one, getattr(smk.output, key))
    for key in ("incidence", "weights_figure"):
        savefig(_placeholder_figure(note), getattr(smk.output, key))


def main(smk):
    db = smk.wildcards.database
    k = int(smk.params.min_cell_count)
    protocol = tt.Protocol.from_config(smk.params.target_trial, k)
    cohort = read_parquet(smk.input.cohort)
    if smk.params.get("randomised"):  # a randomised trial is its own target trial: its intention-to-treat contrast
        truth = read_parquet(smk.input.truth) if "truth" in smk.input.keys() else None
        table = randomised.itt_estimates(cohort, k, truth)
        _skip(smk, randomised.NOTE, {**randomised.summary(table, protocol.followup_days), "database": db}, table)
        return
    reason = tt.missing_requirements(cohort)
    if reason:
        _skip(smk, reason)
        return
    ts = read_parquet(smk.input.timeseries)
    max_hour = max([protocol.grace_h, *protocol.grace_sensitivity_h])
    data = tt.prepare(cohort, ts, protocol, max_hour)
    arms_ok = np.isfinite(data.cs_first).sum() >= 1 and len(data.stay_id) >= 2 * k
    if not arms_ok:
        _skip(smk, f"target trial not emulated: {format_count(len(data.stay_id), k)} eligible stays, "
                   f"{format_count(int(np.isfinite(data.cs_first).sum()), k)} with CS")
        return
    with threadpool_limits(int(smk.threads)):  # multithreaded BLAS on these small matrices is slower on a busy machine
        res = tt.primary_analysis(data, protocol, int(smk.params.seed))
    s, est = res["summary"], res["estimate"]
    s.update(tt.hospital_mortality_estimate(data, protocol, est["clones"]))
    notes = []
    if min(s["ess_cs"], s["ess_no_cs"]) < 2 * k:
        notes.append(f"effective sample size under {2 * k} in an arm: estimates unreliable")
    labels = None
    if smk.input.get("clusters"):
        labels = read_parquet(smk.input.clusters)
    else:
        notes.append("pooled clusters absent (clustering phase not run): no per-cluster estimates")
    with threadpool_limits(int(smk.threads)):
        sens = tt.sensitivity(data, protocol, labels)
    if "truth" in smk.input.keys():
        truth = read_parquet(smk.input.truth)
        col_cs, col_no = f"risk28_cs_{protocol.cs_timing}_g{protocol.grace_h}", f"risk28_no_cs_g{protocol.grace_h}"
        if col_cs in truth.columns and protocol.followup_days == 28 and protocol.min_dose_mg is None:
            t = truth.filter(pl.col("stay_id").cast(pl.String).is_in(list(data.stay_id)))
            s["true_risk_cs"], s["true_risk_no_cs"] = float(t[col_cs].mean()), float(t[col_no].mean())
            s["true_rd"] = s["true_risk_cs"] - s["true_risk_no_cs"]
        else:
            s["true_rd"] = None
            notes.append("the simulator's truth covers 28-day risks without a dose threshold for its truth_grace_h only")
    s["emulated"] = True
    s["note"] = "; ".join(notes)
    s["database"] = db
    write_json(s, smk.output.summary)

    write_csv(tt.protocol_table(protocol, s, k), smk.output.protocol)
    est_rows = [
        {"analysis": "emulated trial (clone-censor-weight)", "estimand": f"per-protocol, grace {protocol.grace_h} h",
         "rd": s["rd"], "rd_lo": s.get("rd_lo"), "rd_hi": s.get("rd_hi"), "rr": s["rr"], "rr_lo": s.get("rr_lo"), "rr_hi": s.get("rr_hi")},
        {"analysis": "naive: CS within the CS window vs not (crude)", "estimand": "association", "rd": s["naive_rd"],
         "rd_lo": s.get("naive_rd_lo"), "rd_hi": s.get("naive_rd_hi"), "rr": None, "rr_lo": None, "rr_hi": None},
        {"analysis": "naive: baseline IPTW", "estimand": "baseline-confounded contrast", "rd": s["naive_iptw_rd"],
         "rd_lo": s.get("naive_iptw_rd_lo"), "rd_hi": s.get("naive_iptw_rd_hi"), "rr": None, "rr_lo": None, "rr_hi": None},
        {"analysis": "emulated trial, hospital mortality (secondary)", "estimand": "per-protocol", "rd": s.get("rd_hospital"),
         "rd_lo": None, "rd_hi": None, "rr": None, "rr_lo": None, "rr_hi": None},
    ]
    if s.get("true_rd") is not None:
        est_rows.append({"analysis": "simulator truth", "estimand": "per-protocol", "rd": s["true_rd"], "rd_lo": None, "rd_hi": None,
                         "rr": s["true_risk_cs"] / s["true_risk_no_cs"], "rr_lo": None, "rr_hi": None})
    write_csv(pl.DataFrame(est_rows, schema_overrides={c: pl.Float64 for c in ("rd", "rd_lo", "rd_hi", "rr", "rr_lo", "rr_hi")}),
              smk.output.estimates)
    # counts in sensitivity rows: suppressed below min_cell_count
    sens = sens.with_columns(pl.col("n_stays").map_elements(lambda n: format_count(int(n), k), return_dtype=pl.String))
    write_csv(sens, smk.output.sensitivity)
    diag = tt.weight_diagnostics(est["clones"])
    diag = diag.with_columns(pl.col("n_clones").map_elements(lambda n: format_count(int(n), k), return_dtype=pl.String))
    write_csv(diag, smk.output.weights)
    title = f"{db}: RD {s['rd']:+.3f}" + (f" [{s['rd_lo']:+.3f}, {s['rd_hi']:+.3f}]" if s.get("rd_lo") is not None else "")
    savefig(tt.incidence_figure(est, protocol.horizon_h, title), smk.output.incidence)
    savefig(tt.weights_figure(tt.weight_diagnostics(est["clones"]), f"{db}: weights over the grace period"), smk.output.weights_figure)
    log.info("target trial %s: RD %.4f, naive %.4f, ESS %.0f / %.0f", db, s["rd"], s["naive_rd"], s["ess_cs"], s["ess_no_cs"])


run_script(main, snakemake)  # noqa: F821
