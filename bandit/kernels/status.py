"""Status codes of the kernels: one list for every kernel module (plain ints, no numba).

A kernel that can refuse its input returns one of these (update kernels: a status; decision kernels: the chosen
arm index, >= 0, or a negative status). Nothing is changed -- no state written, no generator advanced -- unless
the status is ``STATUS_OK`` (or an arm index).

- ``STATUS_OK`` (0)
- ``STATUS_NON_FINITE`` (-1): a feature (or a row of a batch), reward or weight is NaN or inf.
- ``STATUS_INVALID`` (-2): arm index out of range, weight <= 0, label outside [0, 1], gamma outside (0, 1] or
  mismatched shapes.
- ``STATUS_NOT_PD`` (-3): the statistics overflow (finite inputs whose products or sums are not finite).
- ``STATUS_SCORE_OVERFLOW`` (-4): a context so large that a score's mean or variance is not finite (nothing drawn).
- ``STATUS_ILL_CONDITIONED`` (-5): the update would make a precision matrix too ill-conditioned to invert in
  float64 (:mod:`bandit.kernels.dense`, "Conditioning"), including a finite precision matrix that Cholesky finds
  not positive definite (it is in exact arithmetic: its round-off exceeds its smallest eigenvalue).

The policies turn a negative status into the exception that names the argument
(:meth:`bandit.policies.base.Policy._status_error`).
"""

from __future__ import annotations

__all__ = [
    "STATUS_ILL_CONDITIONED",
    "STATUS_INVALID",
    "STATUS_NON_FINITE",
    "STATUS_NOT_PD",
    "STATUS_OK",
    "STATUS_SCORE_OVERFLOW",
]

STATUS_OK = 0
STATUS_NON_FINITE = -1
STATUS_INVALID = -2
STATUS_NOT_PD = -3
STATUS_SCORE_OVERFLOW = -4
STATUS_ILL_CONDITIONED = -5
