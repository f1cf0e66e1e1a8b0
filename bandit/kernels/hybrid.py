"""Hybrid linear model (Li et al. 2010, Algorithm 2) kept as an exact joint ridge regression.

Model. Arm ``a`` has numeric features ``f_a`` (m,); a context is ``x`` (D,) (with the intercept column if any). The
shared feature vector is ``z = vec(f_a x^T)`` (P = m D, ``z[i D + j] = f_a[i] x[j]``) and the expected reward is
``z . beta + x . theta_a``: ``beta`` (P,) is shared by all arms, ``theta_a`` (D,) belongs to arm ``a``.

Joint ridge. Stacking ``w = (beta, theta_0, ..., theta_{K-1})`` and the observation row
``phi = (z, 0, ..., x (block a), ..., 0)``, the estimate is ``w = M^-1 y`` with ``M = L + sum phi phi^T`` and
``y = sum r phi``; the prior precision ``L`` is ``l2`` on the shared block and ``arm_l2`` on the per-arm blocks (Li
et al. use 1 for both). The blocks of ``M`` are the raw statistics kept here:

- per arm ``a`` (leading axis K): ``A[a] = arm_l2 I + sum x x^T`` (D, D), ``B[a] = sum x z^T`` (D, P),
  ``b[a] = sum r x`` (D,), over the observations of arm ``a``;
- shared: ``Z = l2 I + sum z z^T`` (P, P) and ``c = sum r z`` (P,), over all observations.

Eliminating the per-arm blocks (they are block diagonal) leaves the Schur complement
``A0 = Z - sum_a B[a]^T A[a]^-1 B[a]`` (Li et al.'s ``A_0``) and ``b0 = c - sum_a B[a]^T A[a]^-1 b[a]``; then
``beta = A0^-1 b0`` and ``theta_a = A[a]^-1 (b[a] - B[a] beta)``. The derived arrays kept up to date are
``A_inv[a] = A[a]^-1``, ``C[a] = A_inv[a] B[a]`` (D, P), ``theta`` (K, D), ``A0_inv = A0^-1`` (P, P) and ``beta``.

Score variance. The posterior variance (in units of the noise variance) of the prediction for arm ``a`` is
``s = phi^T M^-1 phi = x^T A_inv[a] x + d^T A0_inv d`` with ``d = z - C[a]^T x``, which expands to Li et al.'s
four-term ``s_{t,a}``.

Updates. With gamma == 1 one observation (x, a, r) is a rank-1 change of ``M``, and the Schur complement changes
by the rank-1 term ``A0 <- A0 + d d^T / (1 + rho)``, ``rho = x^T A_inv[a] x`` (Li et al.'s two-step
add/subtract of ``B^T A^-1 B`` collapses to this), so ``A0_inv`` is updated by Sherman-Morrison:
``A0_inv <- A0_inv - q q^T / (1 + s)`` with ``q = A0_inv d``; and ``A_inv[a] <- A_inv[a] - u u^T / (1 + rho)``,
``C[a] <- C[a] + u d^T / (1 + rho)`` with ``u = A_inv[a] x``. Every ``refactor_every`` updates, with a discount
gamma < 1, and for batches, everything derived is instead rebuilt from the raw statistics by Cholesky
(:func:`_rebuild`).

Discount. With gamma < 1 every observation first ages the whole joint system, ``M <- gamma M + (1 - gamma) L``,
``y <- gamma y``, i.e. every raw statistic of every arm and the shared ones (the prior ``L`` is kept): the
estimate is the joint ridge fit with observation weights ``gamma^age`` (age counted in observations of any arm).

Status codes are those of :mod:`bandit.kernels.status`; the state is unchanged unless ``STATUS_OK`` is returned.
``STATUS_NON_FINITE`` means a non-finite input (context or reward); statistics that overflow from finite inputs
give ``STATUS_NOT_PD``, as in :func:`bandit.kernels.ridge.ridge_update_batch`.

Numerics (see also :mod:`bandit.kernels.dense`, "Conditioning"). An update is refused with
``STATUS_ILL_CONDITIONED`` when it would make ``D sum_j A[a]_jj A_inv[a]_jj`` (a bound on the condition number of
the Jacobi-scaled ``A[a]``) or ``max_p Z_pp A0_inv_pp`` exceed ``MAX_CONDITION`` = 1e12; both are checked in
O(D + P) on the new diagonals before anything is written. The second measures the cancellation in
``A0 = Z - sum_a B^T A^-1 B``: its round-off is ~``eps sqrt(Z_pp Z_qq)`` per entry, so the relative accuracy of
``A0`` along coordinate p is ~``eps Z_pp / A0_pp <= eps Z_pp A0_inv_pp`` (~2e-4 at the bound, and ``A0`` turns
indefinite near ``1 / eps``). Directions of ``beta`` that the per-arm coefficients can absorb (context effects
common to all arms) keep ``A0`` near the prior while ``Z`` grows with the data, so this measure grows with the
number of observations times the squared feature scale: measured ~1 per observation for standard-normal contexts,
~1e4 for contexts of magnitude 100 and ~1e5 for magnitude 300 (refusals after ~1e7 observations).
A rank-1 step whose new diagonals fail the
inverse-pair test ``M_jj (M^-1)_jj >= 1`` (or whose denominators drop below 1) has lost precision: everything is
rebuilt from the raw statistics instead. The rebuild forms the Schur complement through triangular solves
(``A0 = Z - W^T W``, ``W = U^-T B``), never through an explicit ``A[a]^-1``: with the explicit inverse, one large
context (``x = [1e5, -1e5]``, ``cond(A[a]) ~ 2e10``) made the computed ``A0`` indefinite and every later rebuild
failed, for every arm.

References
----------
Li, Chu, Langford, Schapire (2010). A contextual-bandit approach to personalized news article recommendation. WWW.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels.dense import (
    DIAG_SLACK,
    MAX_CONDITION,
    MAX_LEVERAGE,
    all_finite,
    cholesky_upper,
    condition_bound,
    inverse_from_cholesky,
    spd_inverse_into,
)
from bandit.kernels.status import (
    STATUS_ILL_CONDITIONED,
    STATUS_INVALID,
    STATUS_NON_FINITE,
    STATUS_NOT_PD,
    STATUS_OK,
)

__all__ = ["hybrid_mean_var", "hybrid_mean_var_batch", "hybrid_update", "hybrid_update_batch"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("dense", "status")
LINKED_SOURCES_SHA256 = "dc3a3e161a4c1d86"


# ---------------------------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _outer_into(f, x, z):
    """``z[i D + j] = f[i] x[j]`` for ``f`` (m,), ``x`` (D,), ``z`` (m D,)."""
    D = x.shape[0]
    for i in range(f.shape[0]):
        fi = f[i]
        o = i * D
        for j in range(D):
            z[o + j] = fi * x[j]


@njit(cache=True)
def _quad_form(S, v, t):
    """``v^T S v`` for symmetric ``S`` (n, n), accumulated as ``t = sum_i v_i S[i, :]`` (contiguous rows)."""
    n = v.shape[0]
    for j in range(n):
        t[j] = 0.0
    for i in range(n):
        c = v[i]
        Si = S[i]
        for j in range(n):
            t[j] += c * Si[j]
    s = 0.0
    for j in range(n):
        s += v[j] * t[j]
    return s


@njit(cache=True)
def _xt_rows(x, M, out):
    """``out = M^T x`` for ``M`` (D, n): ``sum_j x_j M[j, :]`` (contiguous rows)."""
    n = out.shape[0]
    for p in range(n):
        out[p] = 0.0
    for j in range(x.shape[0]):
        c = x[j]
        Mj = M[j]
        for p in range(n):
            out[p] += c * Mj[p]


@njit(cache=True)
def _max_abs(a):
    """Largest absolute entry of the 1-D array ``a`` (0 for an empty array)."""
    m = 0.0
    for j in range(a.shape[0]):
        v = abs(a[j])
        if v > m:
            m = v
    return m


@njit(cache=True)
def _add_observation(x, z, y, Ak, Bk, bk, Z, c, upper):
    """Add one observation to the raw statistics in place: ``Ak += x x^T`` (D, D), ``Bk += x z^T`` (D, P),
    ``bk += y x`` (D,) (the blocks of its arm), ``Z += z z^T`` (P, P; only the upper triangle when ``upper``) and
    ``c += y z`` (P,)."""
    D = x.shape[0]
    P = z.shape[0]
    for i in range(D):
        xi = x[i]
        for j in range(D):
            Ak[i, j] += xi * x[j]
        Bi = Bk[i]
        for p in range(P):
            Bi[p] += xi * z[p]
        bk[i] += y * xi
    for i in range(P):
        zi = z[i]
        Zi = Z[i]
        for j in range(i if upper else 0, P):
            Zi[j] += zi * z[j]
        c[i] += y * zi


@njit(cache=True)
def _mean_var_row(F, A_inv, C, theta, A0_inv, beta, x, z, d, t, out_mean, out_var):
    """Posterior mean and variance of every arm's prediction at one context ``x`` (D,).

    ``z``, ``d``, ``t`` (P,) are scratch. ``out_mean[a] = z_a . beta + x . theta[a]``, ``out_var[a] =
    x^T A_inv[a] x + d_a^T A0_inv d_a`` (clipped at 0) with ``d_a = z_a - C[a]^T x``.
    """
    K, D = theta.shape
    P = beta.shape[0]
    for a in range(K):
        _outer_into(F[a], x, z)
        mean = 0.0
        for p in range(P):
            mean += z[p] * beta[p]
        ta = theta[a]
        for j in range(D):
            mean += x[j] * ta[j]
        _xt_rows(x, C[a], d)
        for p in range(P):
            d[p] = z[p] - d[p]
        var = _quad_form(A_inv[a], x, t) + _quad_form(A0_inv, d, t)
        out_mean[a] = mean
        out_var[a] = 0.0 if var < 0.0 else var


@njit(cache=True)
def _solve_coefficients(A_inv, C, b, c, A0_inv, beta, theta, work):
    """``beta = A0_inv (c - sum_a C[a]^T b[a])`` and ``theta[a] = A_inv[a] b[a] - C[a] beta``; ``work`` (P,)."""
    K, D = b.shape
    P = c.shape[0]
    for p in range(P):
        work[p] = c[p]
    for a in range(K):
        Ca = C[a]
        ba = b[a]
        for j in range(D):
            bj = ba[j]
            Cj = Ca[j]
            for p in range(P):
                work[p] -= bj * Cj[p]
    _xt_rows(work, A0_inv, beta)  # A0_inv is symmetric: A0_inv^T work == A0_inv work
    for a in range(K):
        Ai = A_inv[a]
        Ca = C[a]
        ba = b[a]
        ta = theta[a]
        for i in range(D):
            s = 0.0
            for j in range(D):
                s += Ai[i, j] * ba[j]
            Ci = Ca[i]
            for p in range(P):
                s -= Ci[p] * beta[p]
            ta[i] = s


@njit(cache=True)
def _rebuild(A, B, b, Z, c, A_inv, C, A0_inv, beta, theta):
    """Every derived array from the raw statistics ``A``, ``B``, ``b``, ``Z``, ``c`` (by Cholesky).

    Writes ``A_inv``, ``C``, ``A0_inv``, ``beta``, ``theta`` (which should be fresh arrays: they are partially
    written on failure). With ``A[a] = U^T U`` (upper Cholesky factor), ``W = U^-T B[a]`` and ``C[a] = U^-1 W``
    by triangular solves, and the Schur complement is ``A0 = Z - sum_a W^T W``: a difference of two PSD matrices
    each computed to ``eps`` of its own size, never through the explicit ``A[a]^-1`` (whose error, amplified by
    ``B^T ... B``, grows with ``cond(A[a]) ||Z||``). ``A0`` is accumulated on its upper triangle and mirrored, so
    it is exactly symmetric. Returns ``STATUS_OK``, ``STATUS_NOT_PD`` (the solved coefficients overflow) or
    ``STATUS_ILL_CONDITIONED`` (a Cholesky factorisation failed on finite statistics, which are positive definite
    in exact arithmetic, or :func:`_conditioning_status`).
    """
    K, D = b.shape
    P = c.shape[0]
    U = np.empty((D, D))
    Wd = np.empty((D, D))
    W = np.empty((D, P))
    A0 = np.empty((P, P))
    for i in range(P):
        for j in range(i, P):
            A0[i, j] = Z[i, j]
    for a in range(K):
        if not cholesky_upper(A[a], U):
            return STATUS_ILL_CONDITIONED  # finite (checked by the callers) and PD in exact arithmetic
        inverse_from_cholesky(U, Wd, A_inv[a])
        Ba = B[a]
        Ca = C[a]
        for i in range(D):  # U^T W = B (forward, row by row)
            Wi = W[i]
            Bi = Ba[i]
            for p in range(P):
                Wi[p] = Bi[p]
            for r in range(i):
                u = U[r, i]
                Wr = W[r]
                for p in range(P):
                    Wi[p] -= u * Wr[p]
            inv = 1.0 / U[i, i]
            for p in range(P):
                Wi[p] *= inv
        for i in range(D - 1, -1, -1):  # U C = W (backward)
            Ci = Ca[i]
            Wi = W[i]
            for p in range(P):
                Ci[p] = Wi[p]
            for r in range(i + 1, D):
                u = U[i, r]
                Cr = Ca[r]
                for p in range(P):
                    Ci[p] -= u * Cr[p]
            inv = 1.0 / U[i, i]
            for p in range(P):
                Ci[p] *= inv
        for r in range(D):  # A0 -= W^T W (upper triangle)
            Wr = W[r]
            for i in range(P):
                v = Wr[i]
                if v == 0.0:
                    continue
                A0i = A0[i]
                for j in range(i, P):
                    A0i[j] -= v * Wr[j]
    for i in range(P):
        for j in range(i + 1, P):
            A0[j, i] = A0[i, j]
    if spd_inverse_into(A0, A0_inv) != 0:
        return STATUS_ILL_CONDITIONED  # A0 >= l2 I in exact arithmetic
    work = np.empty(P)
    _solve_coefficients(A_inv, C, b, c, A0_inv, beta, theta, work)
    if not (all_finite(beta) and all_finite(theta.ravel()) and all_finite(C.ravel())):
        return STATUS_NOT_PD
    return _conditioning_status(A, A_inv, Z, A0_inv)


@njit(cache=True)
def _conditioning_status(A, A_inv, Z, A0_inv):
    """``STATUS_ILL_CONDITIONED`` when an arm's ``D sum_j A[a]_jj A_inv[a]_jj`` or the shared
    ``max_p Z_pp A0_inv_pp`` exceeds :data:`~bandit.kernels.dense.MAX_CONDITION`, else ``STATUS_OK`` (module
    docstring, "Numerics").
    """
    for a in range(A.shape[0]):
        if not condition_bound(A[a], A_inv[a]) <= MAX_CONDITION:
            return STATUS_ILL_CONDITIONED
    for p in range(Z.shape[0]):
        if not Z[p, p] * A0_inv[p, p] <= MAX_CONDITION:
            return STATUS_ILL_CONDITIONED
    return STATUS_OK


@njit(cache=True)
def _accumulate(F, A, B, b, Z, c, arms, X, rewards, gamma, l2, arm_l2):
    """Add the rows to the raw statistics in place, in order (gamma < 1: each row first ages everything).

    ``Z`` is accumulated on its upper triangle only (the caller mirrors it).
    """
    K, D = b.shape
    P = c.shape[0]
    z = np.empty(P)
    shift = (1.0 - gamma) * l2
    shift_arm = (1.0 - gamma) * arm_l2
    for r in range(arms.shape[0]):
        k = arms[r]
        x = X[r]
        y = rewards[r]
        if gamma != 1.0:
            for a in range(K):
                Aa = A[a]
                for i in range(D):
                    for j in range(D):
                        Aa[i, j] *= gamma
                    Aa[i, i] += shift_arm
                Ba = B[a]
                for i in range(D):
                    for p in range(P):
                        Ba[i, p] *= gamma
                for i in range(D):
                    b[a, i] *= gamma
            for i in range(P):
                Zi = Z[i]
                for j in range(i, P):
                    Zi[j] *= gamma
                Zi[i] += shift
                c[i] *= gamma
        _outer_into(F[k], x, z)
        _add_observation(x, z, y, A[k], B[k], b[k], Z, c, True)


@njit(cache=True)
def _check_rows(K, D, arms, X, rewards, gamma):
    """Status of the batch arguments: shapes, arm indices, gamma, finite rows."""
    n = arms.shape[0]
    if not (gamma > 0.0 and gamma <= 1.0) or X.shape[0] != n or X.shape[1] != D or rewards.shape[0] != n:
        return STATUS_INVALID
    for r in range(n):
        if arms[r] < 0 or arms[r] >= K:
            return STATUS_INVALID
        if not (math.isfinite(rewards[r]) and all_finite(X[r])):
            return STATUS_NON_FINITE
    return STATUS_OK


@njit(cache=True)
def _update_rebuild(F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor, arms, X, rewards, gamma, l2,
                    arm_l2):
    """Rows added to copies of the raw statistics, everything derived rebuilt, then committed (if all is fine)."""
    A_new = A.copy()
    B_new = B.copy()
    b_new = b.copy()
    Z_new = Z.copy()
    c_new = c.copy()
    _accumulate(F, A_new, B_new, b_new, Z_new, c_new, arms, X, rewards, gamma, l2, arm_l2)
    P = c.shape[0]
    for i in range(P):
        for j in range(i + 1, P):
            Z_new[j, i] = Z_new[i, j]
    if not (
        all_finite(A_new.ravel()) and all_finite(B_new.ravel()) and all_finite(b_new.ravel())
        and all_finite(Z_new.ravel()) and all_finite(c_new)
    ):
        return STATUS_NOT_PD  # the rows were checked finite (_check_rows): the sums overflowed
    A_inv_new = np.empty_like(A_inv)
    C_new = np.empty_like(C)
    A0_inv_new = np.empty_like(A0_inv)
    beta_new = np.empty_like(beta)
    theta_new = np.empty_like(theta)
    status = _rebuild(A_new, B_new, b_new, Z_new, c_new, A_inv_new, C_new, A0_inv_new, beta_new, theta_new)
    if status != STATUS_OK:
        return status
    A[:, :, :] = A_new
    B[:, :, :] = B_new
    b[:, :] = b_new
    Z[:, :] = Z_new
    c[:] = c_new
    A_inv[:, :, :] = A_inv_new
    C[:, :, :] = C_new
    A0_inv[:, :] = A0_inv_new
    beta[:] = beta_new
    theta[:, :] = theta_new
    n_since_refactor[0] = 0
    return STATUS_OK


@njit(cache=True)
def _rank1_diagonal_status(Ak, Ak_inv, x, u, den_arm, Z, A0_inv, z, q, den):
    """Checks of a rank-1 hybrid update on the new diagonals only, before anything is written.

    New diagonals: ``A[k] + x x^T`` and ``A_inv[k] - u u^T / den_arm`` (``u = A_inv[k] x``), ``Z + z z^T`` and
    ``A0_inv - q q^T / den`` (``q = A0_inv d``). Returns ``STATUS_ILL_CONDITIONED`` when ``D sum_j A[k]_jj
    A_inv[k]_jj`` or ``max_p Z_pp A0_inv_pp`` would exceed ``MAX_CONDITION``, ``STATUS_NOT_PD`` when an
    inverse pair fails ``M_jj (M^-1)_jj >= 1 - DIAG_SLACK`` (for the shared block ``Z_jj >= A0_jj`` stands in for
    ``A0_jj``: the test stays necessary) or a denominator is below 1 or above ``MAX_LEVERAGE``, else ``STATUS_OK``.
    """
    # both denominators are >= 1 in exact arithmetic (NaN fails too); above MAX_LEVERAGE the rank-1 step would lose
    # the inverse in the row's direction (bandit.kernels.dense, "Leverage"): rebuilt by Cholesky instead
    consistent = 1.0 - DIAG_SLACK <= den_arm <= MAX_LEVERAGE and 1.0 - DIAG_SLACK <= den <= MAX_LEVERAGE
    vif = 0.0
    for j in range(x.shape[0]):
        p_jj = (Ak[j, j] + x[j] * x[j]) * (Ak_inv[j, j] - u[j] * u[j] / den_arm)
        vif += p_jj
        if not (p_jj >= 1.0 - DIAG_SLACK):
            consistent = False
    cancel = 0.0
    for p in range(z.shape[0]):
        r_pp = (Z[p, p] + z[p] * z[p]) * (A0_inv[p, p] - q[p] * q[p] / den)
        cancel = max(cancel, r_pp)
        if not (r_pp >= 1.0 - DIAG_SLACK):
            consistent = False
    if not consistent:
        return STATUS_NOT_PD
    if not (x.shape[0] * vif <= MAX_CONDITION and cancel <= MAX_CONDITION):
        return STATUS_ILL_CONDITIONED
    return STATUS_OK


# ---------------------------------------------------------------------------------------------------------------
# public kernels
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def hybrid_mean_var(F, A_inv, C, theta, A0_inv, beta, x, out_mean, out_var):
    """Posterior mean ``z_a . beta + x . theta[a]`` and variance ``s_a`` of every arm's prediction at ``x``.

    Parameters
    ----------
    F : (K, m) float64
        Arm features.
    A_inv : (K, D, D) float64
    C : (K, D, P) float64
    theta : (K, D) float64
    A0_inv : (P, P) float64
    beta : (P,) float64
    x : (D,) float64
        One context (with the intercept column if any).
    out_mean, out_var : (K,) float64
        Outputs; the variance is in units of the noise variance and clipped at 0.

    Examples
    --------
    >>> import numpy as np
    >>> F = np.array([[1.0], [2.0]])  # two arms, one feature each; D = 1, P = 1
    >>> A_inv, C, theta = np.ones((2, 1, 1)), np.zeros((2, 1, 1)), np.zeros((2, 1))
    >>> mean, var = np.empty(2), np.empty(2)
    >>> hybrid_mean_var(F, A_inv, C, theta, np.ones((1, 1)), np.array([0.5]), np.array([3.0]), mean, var)
    >>> mean, var  # z = (3, 6): means 0.5 z, variances x^2 + z^2
    (array([1.5, 3. ]), array([18., 45.]))
    """
    P = beta.shape[0]
    z = np.empty(P)
    d = np.empty(P)
    t = np.empty(max(P, x.shape[0]))
    _mean_var_row(F, A_inv, C, theta, A0_inv, beta, x, z, d, t, out_mean, out_var)


@njit(cache=True, nogil=True)
def hybrid_mean_var_batch(F, A_inv, C, theta, A0_inv, beta, X, out_mean, out_var):
    """:func:`hybrid_mean_var` for every row of ``X`` (n, D) into ``out_mean``, ``out_var`` (n, K).

    Row ``i`` runs exactly the arithmetic of the single-context kernel, so it is bit-identical to it.
    """
    P = beta.shape[0]
    z = np.empty(P)
    d = np.empty(P)
    t = np.empty(max(P, X.shape[1]))
    for i in range(X.shape[0]):
        _mean_var_row(F, A_inv, C, theta, A0_inv, beta, X[i], z, d, t, out_mean[i], out_var[i])


@njit(cache=True)
def hybrid_update(F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor, k, x, reward, gamma, l2,
                  arm_l2, refactor_every):
    """Learn one observation ``(x, arm k, reward)`` in place (module docstring for the arithmetic).

    gamma == 1: rank-1 (Sherman-Morrison) updates of ``A_inv[k]``, ``C[k]`` and ``A0_inv``, raw statistics
    incremented, then ``beta`` and every ``theta`` re-solved; ``n_since_refactor[0]`` += 1, and the update that
    would reach ``refactor_every`` rebuilds everything by Cholesky instead (counter reset). gamma < 1: every raw
    statistic ages, the row is added, everything is rebuilt.

    Parameters
    ----------
    F : (K, m) float64
    A, A_inv : (K, D, D) float64
    B, C : (K, D, P) float64
    b, theta : (K, D) float64
    Z, A0_inv : (P, P) float64
    c, beta : (P,) float64
    n_since_refactor : (1,) int64
    k : int64
    x : (D,) float64
    reward, gamma : float
    l2, arm_l2 : float
        Prior precisions of the shared and of the per-arm coefficients (used by the forgetting step).
    refactor_every : int64
        Rank-1 updates between rebuilds (<= 0: never rebuild when gamma == 1).

    Returns
    -------
    int
        A status code; nothing is changed unless ``STATUS_OK``.
    """
    K, D = b.shape
    P = c.shape[0]
    if k < 0 or k >= K or x.shape[0] != D or not (gamma > 0.0 and gamma <= 1.0):
        return STATUS_INVALID
    if not (math.isfinite(reward) and all_finite(x)):
        return STATUS_NON_FINITE
    counter = n_since_refactor[0] + 1
    if gamma != 1.0 or (refactor_every > 0 and counter >= refactor_every):
        arms = np.empty(1, dtype=np.int64)
        arms[0] = k
        rewards = np.empty(1)
        rewards[0] = reward
        return _update_rebuild(F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor, arms,
                               x.reshape((1, D)), rewards, gamma, l2, arm_l2)
    z = np.empty(P)
    d = np.empty(P)
    q = np.empty(P)
    u = np.empty(D)
    _outer_into(F[k], x, z)
    rho = _quad_form(A_inv[k], x, u)  # u = A_inv[k] x
    _xt_rows(x, C[k], d)
    for p in range(P):
        d[p] = z[p] - d[p]
    s0 = _quad_form(A0_inv, d, q)  # q = A0_inv d
    den_arm = 1.0 + rho
    den = den_arm + s0
    mx = _max_abs(x)
    mz = _max_abs(z)
    if not (
        den != math.inf and all_finite(z)
        and math.isfinite(mx * mx) and math.isfinite(mz * mz)
        and math.isfinite(reward * mx) and math.isfinite(reward * mz)
    ):
        return STATUS_NOT_PD  # the inputs are finite: the statistics would overflow
    # the new diagonals, before anything is written (O(D + P)): conditioning bounds and inverse-pair checks
    status = _rank1_diagonal_status(A[k], A_inv[k], x, u, den_arm, Z, A0_inv, z, q, den)
    if status == STATUS_ILL_CONDITIONED:
        return status
    if status != STATUS_OK:  # the rank-1 recursions lost precision: rebuild everything from the raw statistics
        arms = np.empty(1, dtype=np.int64)
        arms[0] = k
        rewards = np.empty(1)
        rewards[0] = reward
        return _update_rebuild(F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor, arms,
                               x.reshape((1, D)), rewards, gamma, l2, arm_l2)
    # shared: A0_inv -= q q^T / (1 + s), written as (q / sqrt) (q / sqrt)^T so it stays exactly symmetric
    sq = 1.0 / math.sqrt(den)
    for p in range(P):
        q[p] *= sq
    for i in range(P):
        qi = q[i]
        Ai = A0_inv[i]
        for j in range(P):
            Ai[j] -= qi * q[j]
    # arm k: C[k] += u d^T / (1 + rho) (before u is rescaled), A_inv[k] -= u u^T / (1 + rho)
    Ck = C[k]
    Aik = A_inv[k]
    for i in range(D):
        ci = u[i] / den_arm
        Ci = Ck[i]
        for p in range(P):
            Ci[p] += ci * d[p]
    _add_observation(x, z, reward, A[k], B[k], b[k], Z, c, False)
    su = 1.0 / math.sqrt(den_arm)
    for i in range(D):
        u[i] *= su
    for i in range(D):
        ui = u[i]
        for j in range(D):
            Aik[i, j] -= ui * u[j]
    _solve_coefficients(A_inv, C, b, c, A0_inv, beta, theta, q)
    n_since_refactor[0] = counter
    return STATUS_OK


@njit(cache=True)
def hybrid_update_batch(F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor, arms, X, rewards, gamma,
                        l2, arm_l2):
    """Learn ``n`` observations in one call; equals ``n`` sequential :func:`hybrid_update` calls to round-off.

    The rows are added to the raw statistics in order (with gamma < 1 each row first ages every statistic, exactly
    the sequential arithmetic), then everything derived is rebuilt once by Cholesky (counter reset).

    Parameters
    ----------
    F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor
        As in :func:`hybrid_update`.
    arms : (n,) int64
    X : (n, D) float64
    rewards : (n,) float64
    gamma, l2, arm_l2 : float

    Returns
    -------
    int
        A status code; nothing is changed unless ``STATUS_OK``.
    """
    K, D = b.shape
    status = _check_rows(K, D, arms, X, rewards, gamma)
    if status != STATUS_OK:
        return status
    if arms.shape[0] == 0:
        return STATUS_OK
    return _update_rebuild(F, A, A_inv, B, C, b, theta, Z, c, A0_inv, beta, n_since_refactor, arms, X, rewards,
                           gamma, l2, arm_l2)
