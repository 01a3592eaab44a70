"""One figure style for the whole report: seaborn, colour-blind-safe palette, readable sizes.

Titles and labels never carry identifiers; callers pass aggregate descriptions only.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

#: Okabe-Ito colour-blind-safe palette
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
#: colours of the CS groups, used everywhere
CS_COLOURS = {"CS": "#D55E00", "no CS": "#0072B2"}


def set_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "svg.hashsalt": "sepsis-cs", "axes.titleweight": "bold"})


def figure(width: float = 7.0, height: float = 4.5, **kw):
    set_style()
    return plt.subplots(figsize=(width, height), **kw)
