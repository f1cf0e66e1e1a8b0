"""Arms: the plan offers a policy chooses between."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, field_validator

from bandit.state import MAX_ARMS, MAX_FEATURES

#: Longest arm name (``bandit.load`` refuses longer ones, so a policy holding one could not be loaded back).
MAX_NAME_CHARS = 1024


class Arm(BaseModel):
    """A plan offer.

    Parameters
    ----------
    name : str
        Unique, non-empty identifier, e.g. ``"family"``, of at most 1024 characters of valid UTF-8 text. Decision
        logs store it in ``action_name``.
    value : float
        Revenue of one conversion (e.g. monthly price or lifetime value), > 0. Policies maximise
        ``value * P(conversion | context, arm)`` when rewards are 0/1 conversions; with all values 1.0 (the default)
        they maximise the expected reward itself.
    features : list of float, optional
        Numeric description of the plan (price, seats, tier, ...), used by hybrid policies for cold start; at most
        ``bandit.state.MAX_FEATURES`` numbers.

    Examples
    --------
    >>> Arm(name="duo", value=16.99).value
    16.99
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    value: float = 1.0
    features: list[float] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not name or not name.strip():
            raise ValueError("arm name must be a non-empty string")
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"arm name must be at most {MAX_NAME_CHARS} characters, got {len(name)}")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no decision log (Parquet) can hold it
            raise ValueError(f"arm name must be valid UTF-8 text (no lone surrogates), got {name!r}") from None
        return name

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"arm value must be finite and > 0, got {value}")
        return value

    @field_validator("features")
    @classmethod
    def _check_features(cls, features: list[float] | None) -> list[float] | None:
        if features is not None and not all(math.isfinite(f) for f in features):
            raise ValueError("arm features must be finite numbers")
        if features is not None and len(features) > MAX_FEATURES:
            raise ValueError(f"an arm has at most {MAX_FEATURES} features, got {len(features)}")
        return features


def as_arms(arms: Sequence[str | Arm]) -> list[Arm]:
    """Normalise a list of names and/or :class:`Arm` into a list of :class:`Arm` with unique names."""
    if isinstance(arms, (str, bytes)) or not isinstance(arms, Sequence):
        raise TypeError(f"arms must be a list of names or Arm objects, got {type(arms).__name__}")
    if len(arms) > MAX_ARMS:
        raise ValueError(f"arms must contain at most {MAX_ARMS} arms, got {len(arms)}")
    out: list[Arm] = []
    for a in arms:
        if isinstance(a, Arm):
            out.append(a)
        elif isinstance(a, str):
            out.append(Arm(name=a))
        else:
            raise TypeError(f"arms must contain str or Arm, got {type(a).__name__}")
    if not out:
        raise ValueError("arms must contain at least one arm")
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"arm names must be unique, duplicated: {dupes}")
    return out
