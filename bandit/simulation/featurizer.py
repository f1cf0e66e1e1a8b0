"""The documented featurizer: user attributes (a DataFrame) -> the context vectors policies see.

Numeric attributes are transformed (``log1p`` for the skewed ones) and standardised with **fixed** constants --
not fitted to the data, so a context means the same thing in every batch, every run and in production. They are
the moments of the default world's population (so features have mean about 0 and sd about 1 there):

====================  =========  ======  =====  ====================================================
column                transform  mean    scale  meaning
====================  =========  ======  =====  ====================================================
``tenure_months``     log1p      2.6     0.9    months since sign-up
``weekly_hours``      log1p      2.2     0.7    listening hours per week
``household_size``    identity   2.0     1.0    household-size proxy (distinct listeners, 1-6)
``past_trials``       identity   0.4     0.65   free trials taken before
====================  =========  ======  =====  ====================================================

Feature = ``(transform(x) - mean) / scale``. Booleans ``student_verified``, ``has_audiobooks`` and
``has_podcasts`` enter as 0/1. Categoricals are one-hot over a fixed, ordered list of levels (every level gets a
column; an unknown level raises ``ValueError``): ``device`` (mobile, desktop, tablet, smart_speaker, tv),
``market`` (the world's markets) and ``current_plan`` ("free" + the plans users can already hold). Each one-hot
block sums to 1, so the blocks carry the intercept; no separate bias column is added.

Examples
--------
>>> import pandas as pd
>>> f = Featurizer(markets=["us", "in"], plans=["free", "individual"])
>>> users = pd.DataFrame({"tenure_months": [0.0], "weekly_hours": [10.0], "household_size": [2],
...                       "past_trials": [0], "student_verified": [True], "has_audiobooks": [False],
...                       "has_podcasts": [False], "device": ["tv"], "market": ["in"], "current_plan": ["free"]})
>>> X = f.transform(users)
>>> X.shape, f.n_features
((1, 16), 16)
>>> dict(zip(f.feature_names, X[0].round(3).tolist()))
{'tenure_months': -2.889, 'weekly_hours': 0.283, 'household_size': 0.0, 'past_trials': -0.615,
 'student_verified': 1.0, 'has_audiobooks': 0.0, 'has_podcasts': 0.0, 'device=mobile': 0.0,
 'device=desktop': 0.0, 'device=tablet': 0.0, 'device=smart_speaker': 0.0, 'device=tv': 1.0, 'market=us': 0.0,
 'market=in': 1.0, 'current_plan=free': 1.0, 'current_plan=individual': 0.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BOOLEAN", "DEVICES", "NUMERIC", "Featurizer"]

#: (column, transform, mean, scale) of each numeric feature.
NUMERIC: tuple[tuple[str, str, float, float], ...] = (
    ("tenure_months", "log1p", 2.6, 0.9),
    ("weekly_hours", "log1p", 2.2, 0.7),
    ("household_size", "identity", 2.0, 1.0),
    ("past_trials", "identity", 0.4, 0.65),
)
#: Boolean features (0/1).
BOOLEAN: tuple[str, ...] = ("student_verified", "has_audiobooks", "has_podcasts")
#: Device levels, in one-hot order.
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet", "smart_speaker", "tv")


def _levels(values: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(values).__name__}")
    levels = tuple(values)
    if not levels or not all(isinstance(v, str) and v for v in levels):
        raise ValueError(f"{name} must be a non-empty list of non-empty str, got {list(levels)}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"{name} must not repeat a level, got {list(levels)}")
    return levels


class Featurizer:
    """Encode user attributes as float64 context vectors (rules and constants in the module docstring).

    Parameters
    ----------
    markets : sequence of str
        Market levels, in one-hot order.
    plans : sequence of str
        ``current_plan`` levels (include ``"free"``), in one-hot order.
    devices : sequence of str
        Device levels; default :data:`DEVICES`.

    Attributes
    ----------
    feature_names : list of str
        Name of every output column: numeric and boolean columns by name, one-hot columns as ``column=level``.
    n_features : int
        d, the length of a context vector.
    """

    def __init__(self, markets: Sequence[str], plans: Sequence[str], devices: Sequence[str] = DEVICES) -> None:
        self.markets = _levels(markets, "markets")
        self.plans = _levels(plans, "plans")
        self.devices = _levels(devices, "devices")
        self._categorical = (("device", self.devices), ("market", self.markets), ("current_plan", self.plans))
        self.feature_names: list[str] = [
            *(c for c, *_ in NUMERIC),
            *BOOLEAN,
            *(f"{col}={lvl}" for col, levels in self._categorical for lvl in levels),
        ]
        self.n_features: int = len(self.feature_names)
        #: column -> level -> position of its one-hot column (for :meth:`transform_one`)
        offset = len(NUMERIC) + len(BOOLEAN)
        self._onehot: dict[str, dict[str, int]] = {}
        for col, levels in self._categorical:
            self._onehot[col] = {lvl: offset + i for i, lvl in enumerate(levels)}
            offset += len(levels)

    def __repr__(self) -> str:
        return f"Featurizer(markets={list(self.markets)}, plans={list(self.plans)}, n_features={self.n_features})"

    @property
    def columns(self) -> list[str]:
        """User columns the featurizer reads."""
        return [*(c for c, *_ in NUMERIC), *BOOLEAN, *(c for c, _ in self._categorical)]

    def transform(self, users: pd.DataFrame) -> np.ndarray:
        """Context matrix of ``users``.

        Parameters
        ----------
        users : pandas.DataFrame
            One row per user with every column of :attr:`columns` (extra columns are ignored).

        Returns
        -------
        ndarray of float64, shape (n, n_features), C-contiguous.

        Raises
        ------
        TypeError
            ``users`` is not a DataFrame.
        ValueError
            A missing column, a non-finite or negative numeric value, or a categorical level not in the
            featurizer's levels.
        """
        if not isinstance(users, pd.DataFrame):
            raise TypeError(f"users must be a pandas DataFrame, got {type(users).__name__}")
        missing = [c for c in self.columns if c not in users.columns]
        if missing:
            raise ValueError(f"users is missing columns {missing}; the featurizer needs {self.columns}")
        n = len(users)
        X = np.empty((n, self.n_features), dtype=np.float64)
        j = 0
        for col, how, mean, scale in NUMERIC:
            try:
                v = users[col].to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"users[{col!r}] must be numeric, got dtype {users[col].dtype}") from None
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise ValueError(f"users[{col!r}] must be finite and >= 0")
            X[:, j] = ((np.log1p(v) if how == "log1p" else v) - mean) / scale
            j += 1
        for col in BOOLEAN:
            X[:, j] = users[col].to_numpy(dtype=np.bool_)
            j += 1
        for col, levels in self._categorical:
            values = users[col].to_numpy(dtype=object)
            codes = pd.Index(levels).get_indexer(values)
            if np.any(codes < 0):
                bad = sorted({str(v) for v in values[codes < 0]})
                raise ValueError(f"users[{col!r}] has levels {bad[:5]} not in the featurizer's {list(levels)}")
            block = X[:, j : j + len(levels)]
            block[:] = 0.0
            block[np.arange(n), codes] = 1.0
            j += len(levels)
        return X

    def transform_one(self, user: Mapping[str, Any]) -> np.ndarray:
        """Context vector of one user given as a mapping (a request's JSON body), without building a DataFrame.

        Equal to ``transform`` on a one-row DataFrame of the same values (to round-off), at a few microseconds: the
        per-request path of a serving handler.

        Parameters
        ----------
        user : mapping
            Every column of :attr:`columns` (extra keys are ignored); booleans must be ``bool``.

        Returns
        -------
        ndarray of float64, shape (n_features,)

        Raises
        ------
        TypeError
            ``user`` is not a mapping.
        ValueError
            A missing attribute, a non-numeric / negative / non-finite number, a flag that is not a bool, or a
            categorical level the featurizer does not know; the message names the attribute.

        Examples
        --------
        >>> f = Featurizer(markets=["us", "in"], plans=["free", "individual"])
        >>> user = {"tenure_months": 0.0, "weekly_hours": 10.0, "household_size": 2, "past_trials": 0,
        ...         "student_verified": True, "has_audiobooks": False, "has_podcasts": False, "device": "tv",
        ...         "market": "in", "current_plan": "free"}
        >>> f.transform_one(user)[[0, 1, 4, 11, 13]].round(3)
        array([-2.889,  0.283,  1.   ,  1.   ,  1.   ])
        >>> f.transform_one({**user, "market": "fr"})
        Traceback (most recent call last):
        ...
        ValueError: user['market'] = 'fr' is not one of ['in', 'us']
        """
        if not isinstance(user, Mapping):
            raise TypeError(f"user must be a mapping of attribute -> value, got {type(user).__name__}")
        x = np.zeros(self.n_features)
        for j, (col, how, mean, scale) in enumerate(NUMERIC):
            v = _attribute(user, col)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"user[{col!r}] must be a number, got {v!r}")
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"user[{col!r}] must be finite and >= 0, got {v!r}")
            x[j] = ((math.log1p(v) if how == "log1p" else v) - mean) / scale
        for j, col in enumerate(BOOLEAN, start=len(NUMERIC)):
            v = _attribute(user, col)
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"user[{col!r}] must be true or false, got {v!r}")
            x[j] = float(v)
        for col, positions in self._onehot.items():
            v = _attribute(user, col)
            position = positions.get(v) if isinstance(v, str) else None
            if position is None:
                raise ValueError(f"user[{col!r}] = {v!r} is not one of {sorted(positions)}")
            x[position] = 1.0
        return x


def _attribute(user: Mapping[str, Any], col: str) -> Any:
    try:
        return user[col]
    except KeyError:
        raise ValueError(f"user is missing the attribute {col!r}; send it in the request") from None
