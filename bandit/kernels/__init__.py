"""Numba kernels of the policies (no Python objects, no validation, plain contiguous arrays in and out).

- :mod:`bandit.kernels.linalg`: per-arm ridge and Laplace-logistic posteriors updated in place (Sherman-Morrison
  rank-1 updates with periodic Cholesky refactorisation, forgetting, batch updates).
- :mod:`bandit.kernels.scoring`: per-arm posterior mean and variance of the linear predictor.
- :mod:`bandit.kernels.propensity`: exact probabilities that each arm has the largest sampled score (quadrature),
  deterministic argmax with split ties, uniform mixing.
- :mod:`bandit.kernels.rng`: SplitMix64 generator on a caller-held state, per-event seeds.
- :mod:`bandit.kernels.policy_kernels`: fused per-policy kernels built from the above.
- :mod:`bandit.kernels.hybrid`: the hybrid (shared + per-arm) joint ridge model of Li et al. 2010 (rank-1 updates,
  Cholesky rebuilds).

The public classes validate their inputs; the kernels trust them (update kernels still refuse non-finite values
and report a status instead of corrupting state).
"""
