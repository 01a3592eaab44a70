"""Figures of the clustering phase (seaborn, colour-blind palette, aggregate content only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import CS_COLOURS, PALETTE, figure


def evidence_figure(table: pd.DataFrame, cdf: pd.DataFrame, stability: pd.DataFrame, title: str):
    """Consensus CDF per k; PAC of the data vs clusterless reference data (M3C); silhouette, delta area, BIC; per-cluster Jaccard."""
    import seaborn as sns

    fig, axes = figure(13, 7.5, nrows=2, ncols=2)
    ax = axes[0, 0]
    ks = sorted(cdf["k"].unique()) if not cdf.empty else []
    colours = sns.color_palette("viridis", len(ks))
    for colour, k in zip(colours, ks):
        sub = cdf[cdf["k"] == k]
        ax.plot(sub["consensus"], sub["cdf"], color=colour, label=f"k={k}")
    if ks:
        ax.legend(fontsize=8, ncol=2)
    ax.set(title="Consensus CDF", xlabel="consensus index", ylabel="CDF")
    t = table[table["k"] > 1]
    chosen = table.loc[table["chosen"], "k"]
    ax = axes[0, 1]
    ax.plot(t["k"], t["pac"], "o-", color=PALETTE[0], label="PAC, data")
    if "pac_null_mean" in t.columns and t["pac_null_mean"].notna().any():
        ax.errorbar(t["k"], t["pac_null_mean"], yerr=t["pac_null_sd"], fmt="s--", color="grey", capsize=3, label="PAC, clusterless reference (mean +/- SD)")
        for _, r in t.iterrows():
            if pd.notna(r.get("null_p_adj")) and pd.notna(r["pac"]):
                ax.annotate(f"p={r['null_p_adj']:.2g}", (r["k"], r["pac"]), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    for k in chosen:
        ax.axvline(k, color="grey", ls=":", lw=1)
    k_text = f"chosen k = {int(chosen.iloc[0])}" if len(chosen) else ""
    ax.set(title=f"Stability vs clusterless data (lower PAC = stabler; p Bonferroni-adjusted); {k_text}", xlabel="k", ylabel="PAC")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.plot(t["k"], t["silhouette"], "^-", color=PALETTE[2], label="silhouette")
    ax.plot(t["k"], t["delta_area"], "s--", color=PALETTE[1], label="delta area")
    ax.set(title="Silhouette, delta area (and BIC, right axis)", xlabel="k")
    ax.legend(fontsize=8, loc="upper left")
    if t["bic"].notna().any():
        ax2 = ax.twinx()
        ax2.plot(t["k"], t["bic"], "o:", color=PALETTE[3], label="BIC")
        ax2.set_ylabel("BIC (Gaussian mixture; lower = better)")
        ax2.legend(fontsize=8, loc="upper right")
    ax = axes[1, 1]
    st = stability.dropna(subset=["jaccard_mean"]) if not stability.empty else stability
    if not st.empty:
        ax.bar(st["cluster"].astype(str), st["jaccard_mean"], yerr=st["jaccard_sd"], color=PALETTE[5])
        ax.axhline(0.75, color="grey", ls="--", lw=1)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
    else:
        ax.text(0.5, 0.5, "one cluster: no per-cluster stability", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="Bootstrap Jaccard per cluster (chosen k)", xlabel="cluster", ylabel="mean Jaccard", ylim=(0, 1.05))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def profile_heatmap(profile: pd.DataFrame, title: str):
    import seaborn as sns

    fig, ax = figure(max(7, 0.45 * profile.shape[1] + 2), 0.6 * profile.shape[0] + 2.5)
    sns.heatmap(profile.clip(-2, 2), cmap="RdBu_r", center=0, vmin=-2, vmax=2, annot=profile.round(1), fmt="", annot_kws={"size": 7}, cbar_kws={"label": "standardised mean (clipped at +/-2)"}, ax=ax)
    ax.set(title=title, xlabel="", ylabel="cluster")
    return fig


def embedding_figure(pca: np.ndarray, tsne: np.ndarray, tsne_idx: np.ndarray, labels: np.ndarray, cs: np.ndarray, title: str):
    fig, axes = figure(12, 10, nrows=2, ncols=2)
    cl_colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(sorted(np.unique(labels)))}
    for row, (coords, lab, t, name) in enumerate(((pca, labels, cs, "PCA"), (tsne, labels[tsne_idx], cs[tsne_idx], "t-SNE"))):
        ax = axes[row, 0]
        for c in sorted(np.unique(lab)):
            m = lab == c
            ax.scatter(coords[m, 0], coords[m, 1], s=4, alpha=0.5, color=cl_colours[c], label="noise" if c < 0 else f"cluster {c}")
        ax.set(title=f"{name}: by cluster", xticks=[], yticks=[])
        ax.legend(markerscale=3, fontsize=8)
        ax = axes[row, 1]
        for g, m in (("no CS", t == 0), ("CS", t == 1)):
            ax.scatter(coords[m, 0], coords[m, 1], s=4, alpha=0.5, color=CS_COLOURS[g], label=g)
        ax.set(title=f"{name}: by CS group", xticks=[], yticks=[])
        ax.legend(markerscale=3, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def similarity_figure(S: pd.DataFrame, matches: pd.DataFrame, title: str):
    """Profile correlations of CS vs no-CS clusters; boxes mark the pairs kept by the similarity floor."""
    import seaborn as sns

    fig, ax = figure(6, 5)
    sns.heatmap(S, cmap="RdBu_r", center=0, vmin=-1, vmax=1, annot=True, fmt=".2f", ax=ax, cbar_kws={"label": "profile correlation"})
    ax.set_title(title)
    for _, m in matches[matches["cluster_a"].notna() & matches["cluster_b"].notna()].iterrows():
        i = list(S.index).index(int(m.cluster_a))
        j = list(S.columns).index(int(m.cluster_b))
        ax.add_patch(__import__("matplotlib").patches.Rectangle((j, i), 1, 1, fill=False, lw=2.5, ec="black"))
    ax.set(ylabel="CS-treated clusters", xlabel="untreated clusters (boxes: matched pairs)")
    return fig


def forest_figure(table: pd.DataFrame, title: str):
    fig, ax = figure(7, 0.6 * len(table) + 2)
    t = table.reset_index(drop=True)
    y = np.arange(len(t))
    ax.errorbar(t["iptw_rd"], y, xerr=[t["iptw_rd"] - t["ci_low"], t["ci_high"] - t["iptw_rd"]], fmt="o", color=PALETTE[0], capsize=3, label="IPTW")
    ax.scatter(t["crude_rd"], y + 0.15, marker="x", color=PALETTE[3], label="crude")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, [f"cluster {c}" for c in t["cluster"]])
    ax.invert_yaxis()
    ax.set(title=title, xlabel="risk difference CS - no CS (negative = lower risk with CS)")
    ax.legend(fontsize=8)
    return fig


def trajectory_figure(T: np.ndarray, names: list[str], labels: np.ndarray, variables: list[str], title: str):
    nb = T.shape[1] // len(variables)
    ncol = min(3, len(variables))
    nrow = int(np.ceil(len(variables) / ncol))
    fig, axes = figure(4.2 * ncol, 3.2 * nrow, nrows=nrow, ncols=ncol, squeeze=False)
    centres = [int(n.split("__bin")[1].split("_")[0]) for n in names[:nb]]
    for i, v in enumerate(variables):
        ax = axes[i // ncol, i % ncol]
        for c in sorted(np.unique(labels)):
            m = labels == c
            blk = T[m, i * nb : (i + 1) * nb]
            ax.plot(centres, blk.mean(0), "o-", ms=3, color=PALETTE[c % len(PALETTE)], label=f"trajectory {c}")
        ax.set(title=v, xlabel="hours after time zero (bin start)")
    for j in range(len(variables), nrow * ncol):
        axes[j // ncol, j % ncol].set_axis_off()
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
