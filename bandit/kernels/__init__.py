"""Numba kernels of the policies (no Python objects, no validation, plain contiguous arrays in and out).

Shared building blocks, by job:

- :mod:`bandit.kernels.dense`: SPD algebra (Cholesky, inverses, solves), rank-1 updates of a precision/inverse pair
  with the conditioning guard, design rows (a raw context plus an implicit intercept).
- :mod:`bandit.kernels.ridge`: per-arm ridge regression updated in place (one observation, a context, a batch).
- :mod:`bandit.kernels.logistic`: per-arm Laplace-logistic posteriors (online step, batch refit).
- :mod:`bandit.kernels.hybrid`: the hybrid (shared + per-arm) joint ridge model of Li et al. 2010.
- :mod:`bandit.kernels.scoring`: per-arm posterior mean and variance of the linear predictor.
- :mod:`bandit.kernels.propensity`: exact probabilities that each arm has the largest sampled score (quadrature),
  deterministic argmax with split ties, uniform mixing.
- :mod:`bandit.kernels.beta`: Beta draws and the Beta-Bernoulli argmax probabilities (BetaTS).
- :mod:`bandit.kernels.decide`: building blocks of a decision (mean/variance from a raw context, draws) and the
  exploration floor, mixed there and nowhere else.
- :mod:`bandit.kernels.rng`: SplitMix64 generator on a caller-held state, per-event seeds.
- :mod:`bandit.kernels.status`: the status codes every kernel returns.

Each policy's own decision rule -- its score and draw -- is a named kernel in its policy file
(``linucb_decide`` / ``linucb_choose`` in :mod:`bandit.policies.linucb`, ``linear_ts_decide`` in
:mod:`bandit.policies.linear_ts`, ...), composed from these blocks.

The public classes validate their inputs; the kernels trust them (update kernels still refuse non-finite values
and report a status instead of corrupting state).

A module whose kernels call kernels of other modules lists them in ``LINKED_SOURCES`` with a hash of their sources
(``LINKED_SOURCES_SHA256``): numba's on-disk cache is keyed on a function's own file only, so changing that hash
when a linked module changes is what makes the cached kernels recompile (tests/bandit/test_kernels.py checks it).
"""
