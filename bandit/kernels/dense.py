"""Dense building blocks of the per-arm Gaussian posteriors (numba): SPD algebra, rank-1 updates, design rows.

Used by :mod:`~bandit.kernels.ridge`, :mod:`~bandit.kernels.logistic` and :mod:`~bandit.kernels.hybrid` (and the
decision kernels, for :func:`fill_context`). Matrices are float64 C-contiguous; D is the feature dimension
including any intercept.

- SPD algebra: :func:`cholesky_upper`, :func:`inverse_from_cholesky`, :func:`spd_inverse_into`,
  :func:`cholesky_solve`, :func:`symmetric_matvec`, :func:`dot`.
- Rank-1 updates, written as ``q q^T`` with ``q = sqrt(w) x`` so that every matrix stays exactly (bitwise)
  symmetric: :func:`add_rank1`, :func:`rank1_upper`, :func:`gram_block_upper` (eight rows per pass), and
  :func:`rank1_precision_update`, which keeps a precision matrix and its inverse in step (Sherman-Morrison with
  periodic Cholesky refactorisation, forgetting ``A <- gamma A + (1 - gamma) l2 I``, the conditioning guard
  below).
- Design rows: a raw context ``X[i]`` (d,) used as the design row ``[X[i], 1]`` (D = d + 1) or ``X[i]`` (D = d)
  without copying ``X``: :func:`fill_context`, :func:`design_row`, :func:`add_scaled_row`, :func:`row_dot`; the
  checks of a single or batch update (:func:`check_common`, :func:`check_row`) and rows grouped by arm
  (:func:`counting_order`).

Status codes are those of :mod:`bandit.kernels.status`.

Conditioning. ``A^-1`` (and everything computed from it: ``theta``, the score variances) is only as accurate as
``eps * cond`` allows (eps = 2.2e-16), where for Cholesky and Sherman-Morrison ``cond`` is that of the Jacobi-scaled
matrix ``S = diag(A)^-1/2 A diag(A)^-1/2`` (Demmel 1989: their errors are relative to ``sqrt(A_ii A_jj)``, so mere
feature scaling -- a feature of magnitude 300, one that never fires -- costs no accuracy). One context far larger
than the rest (``x = [1e9, -1e9, ...]``) or collinear features at a large scale make ``cond(S)`` exceed ``1 / eps``:
the prior ``l2 I`` is then lost in round-off, ``A`` is no longer positive definite in float64, and the arm rejects
(or, worse, mis-scores) every later update. So every update checks, before anything is changed, the bound

    ``cond_2(S_new) <= trace(S_new) trace(S_new^-1) = D * sum_j A_jj (A^-1)_jj``

(``S`` has a unit diagonal; ``A_jj (A^-1)_jj >= 1`` is the variance inflation factor of feature j, large exactly
when feature j is nearly a combination of the others at the scale of the data) against :data:`MAX_CONDITION` =
1e12 (relative accuracy ~1e-4 in the worst direction) and rejects the row with ``STATUS_ILL_CONDITIONED`` above
it. It costs O(D) per update, on the new diagonals ``A_jj + q_j^2`` and, after a Sherman-Morrison step,
``(A^-1)_jj - u_j^2``. It does not grow with the amount of data (a long run adds data in every direction: the
inflation factors stay bounded). Measured after 20,000 updates (d = 6 plus the intercept): ~49 for standard-normal
contexts and for contexts scaled by 100 or 300, ~4e5 for ``100 + N(0, 1)`` features (strongly collinear with the
intercept); a single context of norm ``r`` spread over several features of a fresh arm gives ~``D r^2 / l2``.

Leverage. A Sherman-Morrison step computes the new inverse in the direction of the row as the difference
``s - s^2 / (1 + s)`` of two numbers of size ``s = q^T A^-1 q`` whose true value is below 1: its relative error is
``eps (1 + s)``. A row far outside what the arm has seen (a context many orders of magnitude larger than the earlier
ones in some direction) therefore loses the inverse in that direction -- at ``1 + s ~ 1e16`` it came out indefinite,
and ``bandit.load`` then refused the policy's checkpoint -- while every diagonal still passed the check below. Rows
with ``1 + s >`` :data:`MAX_LEVERAGE` (1e4: error ~2e-12, below the ``1 / MAX_CONDITION`` a well-conditioned pair
needs) are learned by Cholesky refactorisation instead; on standardised contexts ``1 + s`` is of order ``1 + D / l2``
for an arm's first rows and falls towards 1 as it learns, so this one comparison per update changes nothing there.

Precision loss. Sherman-Morrison can drift from the true inverse. Every rank-1 step checks the O(D) necessary
condition of an SPD inverse pair ``A_jj (A^-1)_jj >= 1`` (Cauchy-Schwarz) on the new diagonals, with a relative
slack :data:`DIAG_SLACK` (and that ``1 + q^T A^-1 q >= 1``); when it fails ``A^-1`` is recomputed from ``A`` by
Cholesky instead (the repair), and the row is refused (``STATUS_ILL_CONDITIONED``) only if the updated ``A`` itself
is no longer positive definite in float64 or exceeds the bound. Variances are therefore never negative beyond
round-off (the scoring kernels also clip them at 0).

:func:`spd_inverse_into` returns 1 (``SPD_FAILED``) when its input is not positive definite.

References
----------
Golub & Van Loan (2013), "Matrix Computations", 4th ed., sections 2.1.4 (Sherman-Morrison) and 4.2 (Cholesky).
Demmel (1989), "On floating point errors in Cholesky", LAPACK Working Note 14 (accuracy of the scaled matrix).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels.status import STATUS_INVALID, STATUS_NON_FINITE, STATUS_OK

__all__ = [
    "BLOCK",
    "DIAG_SLACK",
    "MAX_CONDITION",
    "MAX_LEVERAGE",
    "SPD_FAILED",
    "add_rank1",
    "add_scaled_row",
    "all_finite",
    "check_common",
    "check_row",
    "cholesky_solve",
    "cholesky_upper",
    "condition_bound",
    "counting_order",
    "design_row",
    "dot",
    "fill_context",
    "forget_into",
    "gram_block_upper",
    "inverse_from_cholesky",
    "mirror_upper",
    "rank1_precision_update",
    "rank1_upper",
    "row_dot",
    "spd_inverse_into",
    "spd_inverse_work",
    "symmetric_matvec",
]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("status",)
LINKED_SOURCES_SHA256 = "b1b6e53d11d6b31e"

#: Largest accepted bound ``D sum_j A_jj (A^-1)_jj`` on the (Jacobi-scaled) condition number of an updated
#: precision matrix (module docstring, "Conditioning").
MAX_CONDITION = 1e12
#: Largest ``1 + q^T A^-1 q`` learned by a Sherman-Morrison step; a row beyond it refactorises (module docstring,
#: "Leverage").
MAX_LEVERAGE = 1e4
#: A rank-1 step whose new diagonals give ``A_jj (A^-1)_jj < 1 - DIAG_SLACK`` for some j has lost precision.
DIAG_SLACK = 1e-6
#: Returned by :func:`spd_inverse_into` when the matrix is not positive definite.
SPD_FAILED = 1


# SPD algebra and rank-1 updates


@njit(cache=True)
def cholesky_upper(M, U):
    """Cholesky factor ``U`` (upper triangular, ``U^T U = M``) of a symmetric positive definite matrix.

    Parameters
    ----------
    M : (D, D) float64
        Only the upper triangle is read.
    U : (D, D) float64
        Output; its strict lower triangle is set to 0. May not alias ``M``.

    Returns
    -------
    bool
        False if a pivot is not positive and finite (``M`` not numerically PD); ``U`` is then partially written.
    """
    D = M.shape[0]
    for i in range(D):
        for j in range(i):
            U[i, j] = 0.0
        for j in range(i, D):
            U[i, j] = M[i, j]
    for j in range(D):
        d = U[j, j]
        if not (d > 0.0 and d < math.inf):
            return False
        r = math.sqrt(d)
        U[j, j] = r
        inv = 1.0 / r
        for p in range(j + 1, D):
            U[j, p] *= inv
        # right-looking update of the trailing rows (contiguous axpy on each row)
        for i in range(j + 1, D):
            c = U[j, i]
            for p in range(i, D):
                U[i, p] -= c * U[j, p]
    return True


@njit(cache=True)
def inverse_from_cholesky(U, W, out):
    """``out = (U^T U)^-1`` from the upper Cholesky factor ``U``; ``W`` (D, D) is scratch.

    ``V = U^-1`` (upper) is solved bottom-up row by row into ``out``, transposed into ``W``, and the inverse
    ``V V^T = W^T W`` accumulated as ``out[i, :] += W[p, i] W[p, :]``: every loop runs over contiguous rows, and
    both triangles accumulate the same products in the same order, so ``out`` is exactly symmetric.
    """
    D = U.shape[0]
    for i in range(D - 1, -1, -1):
        # V[i, p] = -(sum_{q=i+1..p} U[i, q] V[q, p]) / U[i, i] for p > i, V[i, i] = 1 / U[i, i]
        Vi = out[i]
        for p in range(D):
            Vi[p] = 0.0
        for q in range(i + 1, D):
            c = U[i, q]
            Vq = out[q]
            for p in range(q, D):
                Vi[p] += c * Vq[p]
        inv = 1.0 / U[i, i]
        for p in range(i + 1, D):
            Vi[p] = -inv * Vi[p]
        Vi[i] = inv
    for i in range(D):
        for j in range(D):
            W[i, j] = out[j, i]
    for i in range(D):
        for j in range(D):
            out[i, j] = 0.0
    for p in range(D):
        Wp = W[p]
        for i in range(p + 1):
            c = Wp[i]
            oi = out[i]
            for j in range(p + 1):
                oi[j] += c * Wp[j]


@njit(cache=True)
def spd_inverse_work(M, out, U, W):
    """Inverse of SPD ``M`` into ``out`` with scratch ``U``, ``W`` (D, D); False (``out`` untouched) if not PD."""
    if not cholesky_upper(M, U):
        return False
    inverse_from_cholesky(U, W, out)
    return True


@njit(cache=True)
def spd_inverse_into(M, out):
    """Inverse of a symmetric positive definite matrix by Cholesky.

    Parameters
    ----------
    M : (D, D) float64
        Symmetric positive definite (only the upper triangle is read).
    out : (D, D) float64
        Receives ``M^-1`` (exactly symmetric). May alias ``M``.

    Returns
    -------
    int
        0, or ``SPD_FAILED`` (1) if ``M`` is not numerically positive definite; ``out`` is then untouched.

    Examples
    --------
    >>> import numpy as np
    >>> out = np.empty((2, 2))
    >>> spd_inverse_into(np.array([[4.0, 2.0], [2.0, 3.0]]), out), out
    (0, array([[ 0.375, -0.25 ],
           [-0.25 ,  0.5  ]]))
    >>> spd_inverse_into(np.array([[1.0, 2.0], [2.0, 1.0]]), out)
    1
    """
    D = M.shape[0]
    U = np.empty((D, D))
    W = np.empty((D, D))
    if not cholesky_upper(M, U):
        return SPD_FAILED
    inverse_from_cholesky(U, W, out)
    return 0


@njit(cache=True)
def cholesky_solve(U, rhs, out):
    """Solve ``(U^T U) z = rhs`` given the upper Cholesky factor ``U`` (D, D); ``out`` (D,) may alias ``rhs``."""
    D = U.shape[0]
    for i in range(D):  # U^T y = rhs (forward)
        s = rhs[i]
        for p in range(i):
            s -= U[p, i] * out[p]
        out[i] = s / U[i, i]
    for i in range(D - 1, -1, -1):  # U z = y (backward)
        s = out[i]
        for p in range(i + 1, D):
            s -= U[i, p] * out[p]
        out[i] = s / U[i, i]


@njit(cache=True)
def symmetric_matvec(S, x, out):
    """``out = S @ x`` for symmetric ``S`` (D, D), as ``sum_i x_i S[i, :]`` (contiguous rows, ``i`` ascending).

    Four rows per pass over ``out`` (the same additions in the same order as one row per pass).
    """
    D = x.shape[0]
    for j in range(D):
        out[j] = 0.0
    i = 0
    while i + 4 <= D:
        c0 = x[i]
        c1 = x[i + 1]
        c2 = x[i + 2]
        c3 = x[i + 3]
        S0 = S[i]
        S1 = S[i + 1]
        S2 = S[i + 2]
        S3 = S[i + 3]
        for j in range(D):
            out[j] = (((out[j] + c0 * S0[j]) + c1 * S1[j]) + c2 * S2[j]) + c3 * S3[j]
        i += 4
    while i < D:
        c = x[i]
        Si = S[i]
        for j in range(D):
            out[j] += c * Si[j]
        i += 1


@njit(cache=True)
def all_finite(x):
    """True if every entry of the 1-D array ``x`` is finite."""
    for j in range(x.shape[0]):
        if not math.isfinite(x[j]):
            return False
    return True


@njit(cache=True)
def forget_into(A, gamma, l2, out):
    """``out = gamma A + (1 - gamma) l2 I`` (elementwise; ``out`` may alias ``A``)."""
    D = A.shape[0]
    shift = (1.0 - gamma) * l2
    for i in range(D):
        for j in range(D):
            out[i, j] = gamma * A[i, j]
        out[i, i] += shift


@njit(cache=True)
def add_rank1(A, q):
    """``A += q q^T`` (full matrix, exactly symmetric since ``q_i q_j == q_j q_i``)."""
    D = q.shape[0]
    for i in range(D):
        c = q[i]
        for j in range(D):
            A[i, j] += c * q[j]


@njit(cache=True)
def gram_block_upper(G, Q):
    """``G += sum_{r < 8} Q[r] Q[r]^T`` on the upper triangle, for a (8, D) block of rows.

    Eight rows per pass over ``G``: each element of ``G`` is loaded and stored once per block, which is what makes
    the batch update fast (the inner loop over j is contiguous and vectorised).
    """
    D = Q.shape[1]
    q0 = Q[0]
    q1 = Q[1]
    q2 = Q[2]
    q3 = Q[3]
    q4 = Q[4]
    q5 = Q[5]
    q6 = Q[6]
    q7 = Q[7]
    for i in range(D):
        c0 = q0[i]
        c1 = q1[i]
        c2 = q2[i]
        c3 = q3[i]
        c4 = q4[i]
        c5 = q5[i]
        c6 = q6[i]
        c7 = q7[i]
        Gi = G[i]
        for j in range(i, D):
            Gi[j] += (c0 * q0[j] + c1 * q1[j] + c2 * q2[j] + c3 * q3[j]) + (
                c4 * q4[j] + c5 * q5[j] + c6 * q6[j] + c7 * q7[j]
            )


@njit(cache=True)
def rank1_upper(G, q):
    """``G += q q^T`` on the upper triangle."""
    D = q.shape[0]
    for i in range(D):
        c = q[i]
        Gi = G[i]
        for j in range(i, D):
            Gi[j] += c * q[j]


#: Rows per block of the batch Gram accumulations.
BLOCK = 8


@njit(cache=True)
def condition_bound(M, M_inv):
    """``D * sum_j M_jj (M_inv)_jj``: an upper bound on the condition number of the Jacobi-scaled SPD ``M``
    (module docstring, "Conditioning"); NaN/inf when ``M`` or ``M_inv`` is not finite."""
    D = M.shape[0]
    s = 0.0
    for j in range(D):
        s += M[j, j] * M_inv[j, j]
    return D * s


@njit(cache=True)
def rank1_precision_update(A, A_inv, n_since_refactor, k, x, w, gamma, l2, refactor_every, work):
    """``A[k] <- (gamma A[k] + (1 - gamma) l2 I) + w x x^T`` with ``A_inv[k]`` kept equal to its inverse.

    gamma == 1: Sherman-Morrison on ``A_inv[k]``, or (every ``refactor_every``-th update, for a row whose
    ``1 + q^T A_inv q`` exceeds :data:`MAX_LEVERAGE`, and whenever the Sherman-Morrison result fails the diagonal
    check of the module docstring) Cholesky refactorisation.
    gamma < 1: Cholesky. Either way the update is refused when :func:`condition_bound` of the new pair exceeds
    :data:`MAX_CONDITION`. ``work`` is (2, D) scratch.

    Returns
    -------
    float
        After a Sherman-Morrison step ``c = 1 / sqrt(1 + q^T A_inv q) > 0``, with ``work[0] = q = sqrt(w) x`` and
        ``work[1] = c A_inv q`` (the old ``A_inv``); 0.0 after a Cholesky refactorisation; -1.0 when the new
        precision overflows, -2.0 when it would be too ill-conditioned (above the bound, or finite but not
        positive definite in float64); nothing is changed in both cases.
    """
    D = x.shape[0]
    q = work[0]
    u = work[1]
    sw = math.sqrt(w)
    for j in range(D):
        q[j] = sw * x[j]
    counter = n_since_refactor[k] + 1
    if gamma == 1.0 and not (refactor_every > 0 and counter >= refactor_every):
        # Sherman-Morrison: A_inv <- A_inv - (A_inv q)(A_inv q)^T / (1 + q^T A_inv q)
        symmetric_matvec(A_inv[k], q, u)
        denom = 1.0
        for j in range(D):
            denom += q[j] * u[j]
        if denom == math.inf:
            return -1.0
        # denom >= 1 in exact arithmetic: anything else means A_inv lost precision (repaired below); a row of
        # leverage above MAX_LEVERAGE would lose it (module docstring): refactorised below too
        consistent = denom >= 1.0 - DIAG_SLACK and denom <= MAX_LEVERAGE
        c = 1.0 / math.sqrt(denom) if consistent else 0.0
        for j in range(D):
            u[j] *= c
        Ak = A[k]
        Sk = A_inv[k]
        # the new diagonals, before anything is written: conditioning bound and inverse-pair check (O(D))
        vif = 0.0
        for j in range(D):
            a_jj = Ak[j, j] + q[j] * q[j]
            if a_jj == math.inf:
                return -1.0  # the inputs are finite: A's diagonal overflowed
            p_jj = a_jj * (Sk[j, j] - u[j] * u[j])
            vif += p_jj
            if not (p_jj >= 1.0 - DIAG_SLACK):
                consistent = False
        if consistent:
            if not D * vif <= MAX_CONDITION:
                return -2.0
            for i in range(D):  # A += q q^T and A_inv -= u u^T (both exactly symmetric), one pass
                qi = q[i]
                ui = u[i]
                Ai = Ak[i]
                Si = Sk[i]
                for j in range(D):
                    Ai[j] += qi * q[j]
                for j in range(D):
                    Si[j] -= ui * u[j]
            n_since_refactor[k] = counter
            return c
        # Sherman-Morrison lost precision: repair by refactorising below (A_inv is recomputed from A)
    A_new = np.empty((D, D))
    inv_new = np.empty((D, D))
    U = np.empty((D, D))
    W = np.empty((D, D))
    if gamma == 1.0:
        A_new[:, :] = A[k]
    else:
        forget_into(A[k], gamma, l2, A_new)
    add_rank1(A_new, q)
    if not spd_inverse_work(A_new, inv_new, U, W):
        # A_new >= min(l2, A) I in exact arithmetic: finite and not PD means its round-off exceeds its smallest
        # eigenvalue, i.e. it is far too ill-conditioned
        return -2.0 if all_finite(A_new.ravel()) else -1.0
    if not condition_bound(A_new, inv_new) <= MAX_CONDITION:
        return -2.0
    A[k, :, :] = A_new
    A_inv[k, :, :] = inv_new
    n_since_refactor[k] = 0
    return 0.0


@njit(cache=True)
def check_common(K, D, k, x, gamma):
    """Status of the arm index ``k``, the length of ``x`` (D,) and ``gamma`` of a single update."""
    if k < 0 or k >= K or x.shape[0] != D or not (gamma > 0.0 and gamma <= 1.0):
        return STATUS_INVALID
    return STATUS_OK


@njit(cache=True)
def check_row(K, k, x, reward, weight):
    """Status of one batch row (label ranges are checked by the caller)."""
    if k < 0 or k >= K:
        return STATUS_INVALID
    if not (math.isfinite(reward) and math.isfinite(weight) and all_finite(x)):
        return STATUS_NON_FINITE
    if not weight > 0.0:
        return STATUS_INVALID
    return STATUS_OK


@njit(cache=True)
def counting_order(arms, K):
    """Row indices grouped by arm (stable) and the group starts: rows of arm k are ``order[start[k]:start[k+1]]``."""
    n = arms.shape[0]
    start = np.zeros(K + 1, dtype=np.int64)
    for i in range(n):
        start[arms[i] + 1] += 1
    for k in range(K):
        start[k + 1] += start[k]
    fill = start[:K].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        a = arms[i]
        order[fill[a]] = i
        fill[a] += 1
    return order, start


@njit(cache=True)
def design_row(X, i, scale, out):
    """``out`` (D,) = ``scale * X[i]``, then ``scale`` (the intercept) when ``D == X.shape[1] + 1``.

    Returns False (``out`` partially written) when ``X[i]`` holds NaN or inf.
    """
    d = X.shape[1]
    xr = X[i]
    check = 0.0
    for j in range(d):
        v = xr[j]
        check += v * 0.0  # NaN iff some v is NaN or inf
        out[j] = scale * v
    if out.shape[0] > d:
        out[d] = scale
    return check == 0.0


@njit(cache=True)
def add_scaled_row(X, i, scale, out):
    """``out += scale * [X[i], 1]`` (the 1 only when ``out`` is one longer than a row of ``X``)."""
    d = X.shape[1]
    xr = X[i]
    for j in range(d):
        out[j] += scale * xr[j]
    if out.shape[0] > d:
        out[d] += scale


@njit(cache=True)
def row_dot(X, i, beta):
    """``[X[i], 1] . beta`` (the 1 only when ``beta`` is one longer than a row of ``X``), summed in order."""
    d = X.shape[1]
    xr = X[i]
    s = 0.0
    for j in range(d):
        s += xr[j] * beta[j]
    if beta.shape[0] > d:
        s += beta[d]
    return s


@njit(cache=True)
def dot(a, b):
    """Dot product of two (D,) arrays (sequential sum)."""
    s = 0.0
    for j in range(a.shape[0]):
        s += a[j] * b[j]
    return s


@njit(cache=True)
def mirror_upper(H):
    """Copy the upper triangle of the square matrix ``H`` onto its lower triangle."""
    D = H.shape[0]
    for i in range(D):
        for j in range(i + 1, D):
            H[j, i] = H[i, j]


@njit(cache=True)
def fill_context(context, intercept, x):
    """Copy ``context`` (d,) into ``x`` (D,), appending 1.0 when ``intercept``; False if a value is not finite.

    ``x`` is only partially written when False is returned (it is a scratch buffer).
    """
    d = context.shape[0]
    for j in range(d):
        v = context[j]
        if not np.isfinite(v):
            return False
        x[j] = v
    if intercept:
        x[d] = 1.0
    return True
