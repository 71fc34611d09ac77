"""Load a trained classifier and say what it needs: its feature names and classes.

Accepted: any scikit-learn classifier with ``predict_proba`` (pipelines included) and
LightGBM's scikit-learn API (``LGBMClassifier``), trained on a pandas DataFrame (so that it
knows its feature names), saved with

* skops (``.skops``; safe: only scikit-learn, LightGBM, numpy and scipy types are loaded,
  any other type in the file is refused), or
* joblib / pickle (``.joblib``, ``.pkl``, ``.pickle``; unpickling runs code from the file:
  load only models you trust).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cubehub.errors import InputError

__all__ = ["Model", "load_model"]

#: Top-level packages whose types a skops file may hold.
SKOPS_TRUSTED_PACKAGES = ("sklearn", "lightgbm", "numpy", "scipy", "collections", "builtins")
JOBLIB_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass(frozen=True)
class Model:
    """A loaded classifier."""

    estimator: Any
    feature_names: list[str]
    classes: list[Any]
    """Class labels in the order of ``predict_proba``'s columns."""
    sha256: str
    """Digest of the file: a map store remembers which model made it."""
    path: Path


def load_model(path: str | Path) -> Model:
    """Load a classifier saved with skops or joblib (see the module docstring).

    Raises:
        InputError: no such file, an unknown suffix, untrusted types in a skops file, not a
            classifier, or no feature names (it was trained on a bare array).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no model file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".skops":
        estimator = _load_skops(path)
    elif suffix in JOBLIB_SUFFIXES:
        import joblib

        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise InputError(f"cannot load {path.name} with joblib: {exc}") from None
    else:
        raise InputError(
            f"cannot load a model from {path.name}: save it with skops (.skops) or joblib "
            f"({', '.join(JOBLIB_SUFFIXES)})"
        )
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise InputError(
            f"{path.name} holds a {type(estimator).__name__}, not a fitted classifier with "
            "predict_proba (a scikit-learn classifier or lightgbm.LGBMClassifier)"
        )
    names = _feature_names(estimator)
    if names is None:
        raise InputError(
            f"{path.name}: the model does not know its feature names; fit it on a pandas "
            "DataFrame of samples (cubehub sample's columns), not on a bare array"
        )
    return Model(
        estimator=estimator,
        feature_names=names,
        classes=np.asarray(estimator.classes_).tolist(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        path=path,
    )


def _load_skops(path: Path) -> Any:
    import skops.io

    try:
        unknown = skops.io.get_untrusted_types(file=path)
    except Exception as exc:
        raise InputError(f"cannot read {path.name} as a skops file: {exc}") from None
    refused = [t for t in unknown if t.split(".", 1)[0] not in SKOPS_TRUSTED_PACKAGES]
    if refused:
        raise InputError(
            f"{path.name} holds types cubehub does not load from skops files: "
            f"{', '.join(refused)}; save a scikit-learn or LightGBM model"
        )
    return skops.io.load(path, trusted=unknown)


def _feature_names(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    booster = getattr(estimator, "booster_", None)  # LightGBM fitted without pandas metadata
    if booster is not None:
        found = [str(n) for n in booster.feature_name()]
        if not all(n.startswith("Column_") for n in found):
            return found
    return None
