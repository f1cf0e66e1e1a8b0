"""Explicit, reproducible randomness for the kernels: SplitMix64 on a caller-held uint64 state.

There is no global generator. A generator is a length-1 ``np.uint64`` array that the kernels advance in place, so
the same state always yields the same draws, in any process. :func:`event_seed` derives a per-decision state from
the policy seed and the event id (BLAKE2b, never Python's salted ``hash``): the same policy state and event id give
the same decision everywhere.

References
----------
Steele, Lea & Flood (2014), "Fast splittable pseudorandom number generators", OOPSLA (SplitMix64).
Box & Muller (1958), "A note on the generation of random normal deviates", Ann. Math. Statist. 29(2).
"""

from __future__ import annotations

import functools
import hashlib
import math
import numbers

import numpy as np
from numba import njit

__all__ = [
    "event_seed",
    "next_normal",
    "next_uint64",
    "next_uniform",
    "sample_categorical",
    "seed_state",
    "splitmix64",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
#: 2**-53: maps the top 53 bits of a draw onto [0, 1).
_TWO_M53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * math.pi
#: BLAKE2b personalisation of :func:`event_seed` (changing it changes every event seed).
_PERSON = b"upsell-bandit-v1"
_TWO_64 = 2**64


def seed_state(seed: int | np.uint64) -> np.ndarray:
    """A generator state for ``seed`` (in [0, 2**64)): a (1,) uint64 array, advanced in place by the draws."""
    return np.array([seed], dtype=np.uint64)


@njit(cache=True)
def splitmix64(s):
    """One SplitMix64 step as a pure function.

    Parameters
    ----------
    s : uint64
        Current state.

    Returns
    -------
    (uint64, uint64)
        ``(new_state, output)``: the state advanced by the golden-ratio increment, and its mixed 64-bit output.
    """
    s = s + _GOLDEN
    z = s
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return s, z ^ (z >> _S31)


@njit(cache=True)
def next_uint64(state):
    """Next 64-bit output of the generator ``state`` ((1,) uint64, advanced in place)."""
    s, z = splitmix64(state[0])
    state[0] = s
    return z


@njit(cache=True)
def next_uniform(state):
    """Next uniform float in [0, 1) (53 random bits) from ``state`` ((1,) uint64, advanced in place by one step).

    Examples
    --------
    >>> import numpy as np
    >>> state = np.array([42], dtype=np.uint64)
    >>> u = next_uniform(state)
    >>> 0.0 <= u < 1.0, int(state[0]) != 42
    (True, True)
    """
    return np.float64(next_uint64(state) >> _S11) * _TWO_M53


@njit(cache=True)
def next_normal(state):
    """Next standard normal float from ``state`` ((1,) uint64, advanced in place by two steps).

    Box-Muller with two fresh uniforms: ``sqrt(-2 log(1 - u1)) * cos(2 pi u2)``; ``1 - u1`` lies in (0, 1], so the
    logarithm is finite. The sine partner is discarded, so no hidden state is kept between calls.
    """
    u1 = next_uniform(state)
    u2 = next_uniform(state)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(_TWO_PI * u2)


@njit(cache=True)
def sample_categorical(p, u):
    """Index drawn by inverse CDF from probabilities ``p`` with one uniform ``u``.

    Parameters
    ----------
    p : (K,) float64
        Non-negative weights (normally summing to 1; they are scaled by their sum).
    u : float
        A uniform in [0, 1).

    Returns
    -------
    int
        The first ``k`` whose cumulative weight exceeds ``u * sum(p)``. An index with ``p[k] == 0`` is never
        returned: if round-off leaves the target at or above the total, the last index with ``p > 0`` is returned.
        -1 when no weight is positive.
    """
    K = p.shape[0]
    total = 0.0
    last = -1
    for k in range(K):
        if p[k] > 0.0:
            total += p[k]
            last = k
    if last < 0:
        return last
    target = u * total
    cum = 0.0
    for k in range(K):
        if p[k] > 0.0:
            cum += p[k]
            if target < cum:
                return k
    return last


def event_seed(seed: int, event_id: str) -> int:
    """A stable 64-bit generator seed for one decision, from the policy seed and the event id.

    BLAKE2b (8-byte digest, personalised) of the seed's 8 little-endian bytes followed by the UTF-8 event id; the
    result does not depend on the process, platform or ``PYTHONHASHSEED``.

    Parameters
    ----------
    seed : int
        The policy seed, in [0, 2**64).
    event_id : str
        The event (request) id.

    Returns
    -------
    int
        A seed in [0, 2**64), to be used as a generator state (``np.array([s], dtype=np.uint64)``).

    Raises
    ------
    TypeError
        ``seed`` is not an int or ``event_id`` not a str.
    ValueError
        ``seed`` is outside [0, 2**64).

    Examples
    --------
    >>> event_seed(7, "req-1") == event_seed(7, "req-1")
    True
    >>> event_seed(7, "req-1") == event_seed(7, "req-2")
    False
    """
    if not (type(seed) is int and type(event_id) is str and 0 <= seed < _TWO_64):  # fast path: checked already
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be a non-negative int, got {type(seed).__name__}")
        seed = int(seed)
        if not 0 <= seed < _TWO_64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        if not isinstance(event_id, str):
            raise TypeError(f"event_id must be a str (convert ids with str()), got {type(event_id).__name__}")
    h = _seeded_hasher(seed).copy()
    h.update(event_id.encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


@functools.lru_cache(maxsize=256)
def _seeded_hasher(seed: int) -> hashlib.blake2b:
    """The personalised BLAKE2b state after the seed's bytes (copied, never updated: safe to share)."""
    return hashlib.blake2b(seed.to_bytes(8, "little"), digest_size=8, person=_PERSON)
