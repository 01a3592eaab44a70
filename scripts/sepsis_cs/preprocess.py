"""Preprocessing pipelines for scikit-learn, always fitted inside the training data.

:func:`make_preprocessor` returns an unfitted ``ColumnTransformer`` (median imputation with
missingness indicators and standardisation for numeric columns, most-frequent imputation and
one-hot encoding for categorical ones).  Put it in a ``Pipeline`` with the estimator so that
cross-validation refits it on each training fold.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def make_preprocessor(numeric: list[str], categorical: list[str], scale: bool = True, indicators: bool = True) -> ColumnTransformer:
    num_steps = [("impute", SimpleImputer(strategy="median", add_indicator=indicators, keep_empty_features=True))]
    if scale:
        num_steps.append(("scale", StandardScaler()))
    transformers = [("num", Pipeline(num_steps), numeric)]
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
