"""Leakage guards: features never read past the prediction horizon."""

import numpy as np
import polars as pl

from sepsis_cs.features import stay_features


def test_post_horizon_signal_is_not_used(sim_small, small_features, dictionary):
    cohort, ts, _ = sim_small
    horizon = 24
    # plant the outcome itself into every hour after the horizon, as lactate 1 or 20
    y = cohort.select("stay_id", "hospital_mortality")
    late = (
        ts.filter(pl.col("hour") > horizon)
        .select("stay_id", "hour")
        .unique()
        .join(y, on="stay_id")
        .with_columns(pl.lit("lactate").alias("variable"), (1.0 + 19.0 * pl.col("hospital_mortality")).alias("value"))
        .select("stay_id", "hour", "variable", "value")
    )
    planted = pl.concat([ts.filter(~((pl.col("variable") == "lactate") & (pl.col("hour") > horizon))), late.with_columns(pl.col("hour").cast(pl.Int32))])
    clean = small_features  # windows (-24, 0) and (0, 24): the horizon is 24 h
    leaky = stay_features(cohort, planted, dictionary, [(-24, 0), (0, horizon)])
    assert clean.equals(leaky)
    # and the plant is real: a window past the horizon does see it
    # (among the stays still charted after the horizon: the others have no planted row to see)
    beyond = stay_features(cohort, planted, dictionary, [(0, 72)]).join(y, on="stay_id").filter(
        pl.col("stay_id").is_in(late["stay_id"].unique().implode())
    )
    r = np.corrcoef(beyond["lactate__max_0_72"].to_numpy(), beyond["hospital_mortality"].to_numpy())[0, 1]
    assert r > 0.8


SEEN: list[frozenset] = []


def _recording_preprocessor(*args, **kwargs):
    """make_preprocessor, but every fit records the stays it saw (survives sklearn.clone)."""
    from sklearn.compose import ColumnTransformer

    from sepsis_cs.preprocess import make_preprocessor

    class RecordingColumnTransformer(ColumnTransformer):
        def fit(self, X, y=None, **params):
            SEEN.append(frozenset(X.index))
            return super().fit(X, y, **params)

        def fit_transform(self, X, y=None, **params):
            SEEN.append(frozenset(X.index))
            return super().fit_transform(X, y, **params)

    pre = make_preprocessor(*args, **kwargs)
    return RecordingColumnTransformer(pre.transformers, remainder=pre.remainder, verbose_feature_names_out=False)


def test_preprocessing_and_models_see_training_folds_only(sim_small, small_features, dictionary, monkeypatch):
    """Every fit of a preprocessor (and so of the model behind it in the Pipeline) during nested CV
    uses stays of the outer training part only; each outer refit uses exactly that part."""
    from sepsis_cs import supervised as S
    from sepsis_cs.features import categorical_columns

    SEEN.clear()
    monkeypatch.setattr(S, "make_preprocessor", _recording_preprocessor)
    cohort = sim_small[0]
    feats = small_features
    cols = [c for c in feats.columns if c != "stay_id"]
    X, y, groups = S.model_inputs(feats, cohort, cols, dictionary, "hospital_mortality")
    cat = categorical_columns(cols, dictionary)
    num = [c for c in cols if c not in cat]
    oof, _, _ = S.nested_cv(X, y, groups, "logistic", num, cat, {"C": [0.01, 0.1]}, 3, 2, seed=1)
    fold = dict(zip(X.index, oof["fold"]))
    assert len(SEEN) >= 3 * (2 * 2 + 1) - 3, "preprocessor fits were not recorded"
    for s in SEEN:
        assert len({fold[i] for i in s}) <= 2, "a preprocessor was fitted on stays of every outer fold"
    for k in range(3):
        train = frozenset(i for i, f in fold.items() if f != k)
        assert train in SEEN, f"outer refit {k} did not use exactly the outer training stays"
        # inner tuning fits are strict subsets of this fold's training stays
        assert any(s < train for s in SEEN)
