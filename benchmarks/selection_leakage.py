"""Selection leakage on a pure-noise outcome: nested-CV AUROC of the penalised logistic model with
all features, with the variable-selection consensus re-run inside each outer training fold (what
``features: selected`` does now) and with one selection on all stays before the folds (what it did
before issue 15), over simulator seeds (``outcome_model: noise``; outcome = death by day 28, independent
of everything; stays alive and in the ICU at 24 h, as the risk models use).

    .venv/bin/python benchmarks/selection_leakage.py --seeds 8 --n-stays 700

Prints one line per seed and the mean and SD of each AUROC over seeds; 0.5 is the truth (cross-validation
itself is slightly pessimistic under the null: a permuted outcome gave a mean of 0.48-0.49 here).
The selection uses light settings (10 subsamples, 2 permutation folds) to keep the run short.
Output of ``--seeds 8 --n-stays 700`` (hourly simulator, landmark cohort): benchmarks/selection_leakage.txt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from threadpoolctl import threadpool_limits  # noqa: E402

from sepsis_cs import metrics as M  # noqa: E402
from sepsis_cs import supervised as S  # noqa: E402
from sepsis_cs.correlation import association_matrix  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from sepsis_cs.features import categorical_columns, stay_features  # noqa: E402
from sepsis_cs.selection import SelectionSettings, select_features  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

GRID = {"C": [0.01, 0.1]}


def one_seed(seed: int, n_stays: int, dictionary) -> dict:
    cohort, ts, _ = simulate(SimulationSettings(n_stays=n_stays, outcome_model="noise"), seed=seed, database="simulated")
    # the risk models' landmark cohort; death by day 28 is the simulator's pure-noise outcome
    risk, _ = S.risk_cohort(cohort, None, 24)
    cohort = S.restrict_to_risk_cohort(cohort, risk)
    feats = stay_features(cohort, ts.join(cohort.select("stay_id"), on="stay_id", how="semi"), dictionary, [(-24, 0), (0, 24)])
    cols = [c for c in feats.columns if c != "stay_id"]
    X, y, groups = S.model_inputs(feats, cohort, cols, dictionary, "mortality_28d")
    cat = categorical_columns(cols, dictionary)
    fold = S.outer_folds(y, groups, 3, 5)
    s = SelectionSettings(seed=5, n_subsamples=10, perm_folds=2, tree_max_iter=30)
    assoc = association_matrix(X, cols, cat)

    def auc(use, fold_columns=None):
        oof, _, _ = S.nested_cv(X[use], y, groups, "logistic", [c for c in use if c not in cat], [c for c in use if c in cat], GRID, 3, 2,
                                seed=5, fold=fold, fold_columns=fold_columns)
        return M.auroc(oof["y"], oof["score"])

    fold_columns, _ = S.fold_selection(X, y, groups, fold, cat, assoc, s)
    table, _ = select_features(X, y, groups, cat, assoc, s)
    leaky = table.loc[table["selected"], "feature"].tolist()
    return {"all": auc(cols), "selected_in_folds": auc(cols, fold_columns), "selected_on_all_stays": auc(leaky)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--n-stays", type=int, default=700)
    a = ap.parse_args()
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    res = []
    with threadpool_limits(limits=1):
        for seed in range(1, a.seeds + 1):
            r = one_seed(seed, a.n_stays, dictionary)
            res.append(r)
            print(seed, {k: round(v, 3) for k, v in r.items()}, flush=True)
    for k in res[0]:
        v = np.array([r[k] for r in res])
        print(f"{k:>24}: mean AUROC {v.mean():.3f} (SD {v.std(ddof=1):.3f}, MC SE {v.std(ddof=1) / np.sqrt(len(v)):.3f}) over {len(v)} seeds")


if __name__ == "__main__":
    main()
