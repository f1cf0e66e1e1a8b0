"""Exact action probabilities: the probability that each arm has the largest sampled score.

Thompson sampling draws independent scores and plays the argmax; the propensity of arm ``k`` is

    P_k = integral f_k(t) prod_{j != k} F_j(t) dt,

with ``f_j`` / ``F_j`` the density / CDF of arm ``j``'s score. All K integrals share one set of nodes on a common
axis, so a node costs one CDF and one density per arm (K ``erfc`` + K ``exp``); the products
``prod_{j != k} F_j`` come from prefix and suffix products (no division by a CDF that underflowed).

Range. Arm ``j``'s support is ``mu_j +- C sigma_j`` (``C = 6.5``). Above ``U = max_j (mu_j + C sigma_j)`` every
density is negligible; below ``L = max_j (mu_j - C sigma_j)`` the product of CDFs is below ``Phi(-C) ~ 4e-11``.
For Gaussian scores ``L`` is then raised by bisection while the Mills-ratio bound
``prod_{a_j < -1} phi(a_j) / |a_j|`` of ``prod_j F_j`` stays below the same level (a third of the range goes when
several arms are close to the top). The mass left out is at most ``(K + 1) Phi(-6.5)``.

Rule on ``[L, U]`` (see :func:`_segment_gl`):

- Gaussian scores, no point mass inside the range, at most ``TRAP_MAX_NODES`` nodes: the trapezoidal rule with
  spacing ``h <= 0.6 sigma_min`` (smallest sigma of the arms whose support meets the range). The integrand is
  smooth (entire) and negligible at both ends, where the trapezoidal rule converges geometrically; it needs about
  half the nodes of Gauss-Legendre, whose nodes cluster at the ends. Typically 20-30 nodes: ~3-6 us for K = 6.
- Otherwise (sigmas that differ by more than ~3x, a point mass cutting the range, the logistic model): composite
  Gauss-Legendre (``GL_NODES`` points per piece). The breakpoints are the support ends of all arms; consecutive
  intervals are merged while the piece is at most ``LAMBDA`` times the smallest sigma of the arms whose support
  meets it, longer intervals are cut into equal pieces. Every feature of every integrand is thus resolved at its
  own scale, however different the sigmas.

The integrals are then scaled to sum to one minus the (closed-form) point-mass probabilities (the quadrature error
is ~1e-9 before this).

Point masses (``sigma_k == 0``, or ``C sigma_k <= 1e-9 |mu_k|``) are handled in closed form: with ``M`` the
largest point mass, a point mass at ``M`` wins with probability ``prod_{continuous j} F_j(M)`` (split evenly among
exactly equal point masses), lower point masses never win, and the continuous arms' integrals start at ``M``.

Logistic model (:func:`logistic_value_argmax_probs`): the score is ``t = v_k sigmoid(s_k)``; arm ``j``'s CDF at
``t`` is ``Phi((logit(t / v_j) - mu_j) / sigma_j)`` below its cap ``t = v_j`` (1 above). A single axis cannot
resolve scores piled up against a cap (``t = v (1 - 1e-20)`` rounds to ``v``), so the range is cut into one
segment per distinct value ``w`` (from the top of the previous value's supports to the top of this value's
supports), integrated in ``u = logit(t / w)``: arms of value ``w`` are exactly Gaussian in ``u``, lower-valued
arms are saturated (CDF 1), and higher-valued arms are stretched (features at least their sigma wide) but bend on
a scale of 1 around ``u = -log(1 - w / v)``, where pieces are at most ``LAMBDA`` long. All positions are kept as
log-odds, so nothing is lost near a cap. Typically 10-25 us for K = 6.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels.logistic import sigmoid

__all__ = [
    "argmax_tie_probs",
    "argmax_tie_probs_batch",
    "gaussian_argmax_probs",
    "gaussian_argmax_probs_batch",
    "logistic_value_argmax_probs",
    "logistic_value_argmax_probs_batch",
    "uniform_mix",
]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("dense", "logistic", "status")
LINKED_SOURCES_SHA256 = "6595939b70d0f7b1"

#: Support half-width of each arm, in standard deviations of its Gaussian.
C_TAIL = 6.5
#: log of the Mills-ratio bound ``phi(C) / C`` of ``Phi(-C)``: the mass allowed below the range.
_LOG_TAIL = -0.5 * C_TAIL * C_TAIL - math.log(C_TAIL) - 0.5 * math.log(2.0 * math.pi)
#: Trapezoidal spacing, in units of the smallest relevant sigma.
TRAP_SPACING = 0.6
#: Above this many trapezoidal nodes the composite Gauss-Legendre rule is used instead.
TRAP_MAX_NODES = 64
#: Nodes of each Gauss-Legendre piece.
GL_NODES = 8
#: Gauss-Legendre pieces are at most this many sigmas (of the narrowest arm they meet) long.
LAMBDA = 3.0
#: Kink window of a higher-valued arm on a segment's variable: [kink - KINK_BELOW, kink + KINK_ABOVE] (the map's
#: curvature is below e^-12 outside; above it the arm's CDF is constant to e^-20).
KINK_BELOW = 12.0
KINK_ABOVE = 20.0
#: An arm whose support ``mu +- C sigma`` is narrower than this fraction of ``|mu|`` is a point mass at ``mu``
#: (double precision cannot place quadrature nodes inside it; the difference is far below the accuracy).
POINT_MASS_REL = 1e-9
#: Beyond this standard score a CDF is taken as exactly 0 or 1 and the density as 0 (Phi(-8.5) ~ 1e-17).
_SATURATED = 8.5
#: Rows (of length K) of the float scratch of :func:`_argmax_probs_core`.
WORK_ROWS = 18
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(GL_NODES)


# ---------------------------------------------------------------------------------------------------------------
# scalar helpers
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _norm_cdf(a):
    """Standard normal CDF ``Phi(a)`` (via ``erfc``: accurate in the lower tail)."""
    return 0.5 * math.erfc(-a * _INV_SQRT2)


@njit(cache=True)
def _norm_pdf(a):
    """Standard normal density ``phi(a)``."""
    return _INV_SQRT2PI * math.exp(-0.5 * a * a)


@njit(cache=True)
def _logit_scaled(s, r):
    """``logit(r sigmoid(s))`` for ``r > 0``, without overflow; +inf when ``r sigmoid(s) >= 1``."""
    if r == 1.0:
        return s
    if s <= 0.0:
        es = math.exp(s)
        den = 1.0 + (1.0 - r) * es  # = exp(s) (1 - r + exp(-s))
        if den <= 0.0:
            return math.inf
        return math.log(r) + s - math.log1p((1.0 - r) * es)
    e = math.exp(-s)
    den = 1.0 - r + e
    if den <= 0.0:
        return math.inf
    return math.log(r) - math.log(den)


@njit(cache=True)
def _integrand(u, gauss, cmu, cisg, crat, clog, n_c, F, g):
    """``g[c] = f_c(u) prod_{c' != c} F_c'(u)`` for the continuous arms ``c < n_c``; ``F`` is scratch.

    ``gauss``: ``u`` is the score itself. Otherwise ``u = logit(t / w)`` for a score ``t``, and arm ``c`` (value
    ``v_c``, ``crat[c] = w / v_c``, ``clog[c] = log(crat[c])``) has log-odds ``s_c = logit(crat[c] sigmoid(u))
    = clog[c] - log(1 - crat[c] + exp(-u))`` (CDF 1 beyond its cap) and density w.r.t. ``u`` carrying
    ``ds_c/du = exp(-u) / (1 - crat[c] + exp(-u))``. ``cmu``, ``cisg``: mean and 1 / sigma of each arm.
    """
    e = 0.0
    if not gauss:
        e = math.exp(-u) if u > 0.0 else math.exp(u)  # exp(-u), or exp(u) for the u <= 0 form
    prefix = 1.0
    for c in range(n_c):
        s = u
        dsdu = 1.0
        capped = False
        if not gauss and crat[c] != 1.0:
            r = crat[c]
            if u > 0.0:
                den = 1.0 - r + e
                capped = not den > 0.0
                if not capped:
                    s = clog[c] - math.log(den)
                    dsdu = e / den
            else:  # multiply through by exp(u): no overflow of exp(-u)
                den = 1.0 + (1.0 - r) * e
                capped = not den > 0.0
                if not capped:
                    s = clog[c] + u - math.log1p((1.0 - r) * e)
                    dsdu = 1.0 / den
        a = (s - cmu[c]) * cisg[c]
        if capped or a > _SATURATED:  # Phi(a) rounds to 1 and phi(a) < 1e-16 phi(0)
            Fc = 1.0
            fc = 0.0
        elif a < -_SATURATED:  # Phi(a) < 1e-17: negligible next to every other term
            Fc = 0.0
            fc = 0.0
        else:
            Fc = _norm_cdf(a)
            fc = _norm_pdf(a) * cisg[c] * dsdu
        F[c] = Fc
        g[c] = fc * prefix  # times prod_{c' < c} F
        prefix *= Fc
    suffix = 1.0
    for c in range(n_c - 1, -1, -1):  # times prod_{c' > c} F
        g[c] *= suffix
        suffix *= F[c]


# ---------------------------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _log_cdf_bound(a):
    """Upper bound of ``log Phi(a)``: ``log(phi(a) / |a|)`` (Mills ratio) for ``a < -1``, else 0."""
    if a < -1.0:
        return -0.5 * a * a - math.log(-a) - 0.5 * math.log(2.0 * math.pi)
    return 0.0


@njit(cache=True)
def _tight_lower(L, U, cmu, cisg, n_c):
    """Raise the lower end ``L`` of a Gaussian range while ``prod_j F_j`` provably stays below ``~Phi(-C)``.

    Bisection (10 halvings of [L, U]) on ``sum_j log_cdf_bound(a_j) <= log(phi(C) / C)``, which holds at ``L``
    (one arm is at ``-C`` there). Every arm's integral below the returned ``t`` is at most ``prod_j F_j(t)``.
    """
    lo = L
    hi = U
    for _ in range(10):
        t = 0.5 * (lo + hi)
        bound = 0.0
        for c in range(n_c):
            bound += _log_cdf_bound((t - cmu[c]) * cisg[c])
        if bound <= _LOG_TAIL:
            lo = t
        else:
            hi = t
    return lo


@njit(cache=True)
def _trapezoid(L, U, n_int, cmu, cisg, n_c, F, g, acc):
    """``acc[c] +=`` trapezoidal integrals (Gaussian scores) over [L, U] with ``n_int`` equal intervals."""
    h = (U - L) / n_int
    for i in range(n_int + 1):
        y = L + i * h if i < n_int else U
        wt = 0.5 * h if (i == 0 or i == n_int) else h
        _integrand(y, True, cmu, cisg, cmu, cmu, n_c, F, g)
        for c in range(n_c):
            acc[c] += wt * g[c]


@njit(cache=True)
def _gl_piece(ua, ub, gauss, cmu, cisg, crat, clog, n_c, F, g, acc):
    """``acc[c] +=`` Gauss-Legendre (``GL_NODES`` points) integrals over [ua, ub] of the integration variable."""
    centre = 0.5 * (ua + ub)
    half = 0.5 * (ub - ua)
    for i in range(GL_NODES):
        _integrand(centre + half * _GL_X[i], gauss, cmu, cisg, crat, clog, n_c, F, g)
        w = half * _GL_W[i]
        for c in range(n_c):
            acc[c] += w * g[c]


@njit(cache=True)
def _piece_width(a, b, csig, n_c, lo, hi, kink):
    """Smallest feature width of the arms whose support (``lo``, ``hi``, on the segment's variable) meets [a, b].

    An arm's width is its sigma, or ``min(sigma, 1)`` where the piece meets its kink window
    ``[kink - KINK_BELOW, kink + KINK_ABOVE]`` (higher-valued arms, see :func:`_segment_gl`).
    """
    width = math.inf
    for c in range(n_c):
        if lo[c] < b and hi[c] > a:
            wc = csig[c]
            if a < kink[c] + KINK_ABOVE and b > kink[c] - KINK_BELOW:
                wc = min(wc, 1.0)
            width = min(width, wc)
    return width


@njit(cache=True)
def _segment_gl(u_lo, u_hi, gauss, cmu, csig, cisg, crat, clog, n_c, lo, hi, kink, F, g, acc, bp):
    """``acc[c] +=`` integrals over [u_lo, u_hi] of the variable ``u = logit(t / w)`` by Gauss-Legendre pieces.

    Breakpoints: the support ends ``lo``/``hi`` and kink windows (in ``u``) inside the range. Consecutive
    intervals are merged while the piece is at most ``LAMBDA`` feature widths (:func:`_piece_width`) long; a
    longer interval is cut into equal pieces. Arms of value ``w`` are exactly Gaussian in ``u``. An arm of value
    ``v > w`` has log-odds ``s(u) = logit((w / v) sigmoid(u))``: ``ds/du = sigmoid(-(u - kink))`` with
    ``kink = -log(1 - w / v)``, so its features are at least its sigma wide, but bend on a scale of 1 around the
    kink; above ``kink + KINK_ABOVE`` it is constant to 1e-9 (its ``hi`` is capped there). ``bp`` (>= 3 n_c + 2)
    is scratch.
    """
    nb = 0
    bp[nb] = u_lo
    nb += 1
    bp[nb] = u_hi
    nb += 1
    for c in range(n_c):
        if u_lo < lo[c] < u_hi:
            bp[nb] = lo[c]
            nb += 1
        if u_lo < hi[c] < u_hi:
            bp[nb] = hi[c]
            nb += 1
        k_lo = kink[c] - KINK_BELOW
        if u_lo < k_lo < u_hi and lo[c] < k_lo < hi[c]:
            bp[nb] = k_lo
            nb += 1
    for i in range(1, nb):  # insertion sort
        v = bp[i]
        p = i - 1
        while p >= 0 and bp[p] > v:
            bp[p + 1] = bp[p]
            p -= 1
        bp[p + 1] = v
    i = 0
    while i < nb - 1:
        a = bp[i]
        best = -1
        for e in range(i + 1, nb):  # merge intervals while the piece stays short enough
            if not bp[e] - a <= LAMBDA * _piece_width(a, bp[e], csig, n_c, lo, hi, kink):
                break
            best = e
        if best > 0:
            _gl_piece(a, bp[best], gauss, cmu, cisg, crat, clog, n_c, F, g, acc)
            i = best
        else:
            b = bp[i + 1]
            r = (b - a) / (LAMBDA * _piece_width(a, b, csig, n_c, lo, hi, kink))
            m = max(1, int(math.ceil(r))) if r < 64.0 else 64  # (NaN -> 64: no undefined int conversion)
            for q in range(m):
                _gl_piece(a + (b - a) * q / m, a + (b - a) * (q + 1) / m if q + 1 < m else b,
                          gauss, cmu, cisg, crat, clog, n_c, F, g, acc)
            i += 1


# ---------------------------------------------------------------------------------------------------------------
# core
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _argmax_probs_core(mu, sigma, values, gauss, eligible, out, cont, work):
    """Probabilities that each eligible arm's score is the largest, into ``out`` (K,).

    ``gauss``: scores ``N(mu_k, sigma_k^2)`` (``values`` ignored). Otherwise scores ``values_k sigmoid(s_k)``,
    ``s_k ~ N(mu_k, sigma_k^2)``. ``cont`` (K,) int64 and ``work`` (WORK_ROWS K,) float64 are scratch.
    """
    K = mu.shape[0]
    F = work[0:K]
    g = work[K : 2 * K]
    acc = work[2 * K : 3 * K]
    lo = work[3 * K : 4 * K]
    hi = work[4 * K : 5 * K]
    cmu = work[5 * K : 6 * K]
    csig = work[6 * K : 7 * K]
    cisg = work[7 * K : 8 * K]
    cval = work[8 * K : 9 * K]
    scores = work[9 * K : 10 * K]
    kink = work[10 * K : 11 * K]
    crat = work[11 * K : 12 * K]
    clog = work[12 * K : 13 * K]
    bp = work[13 * K : 18 * K]
    n_e = 0
    n_c = 0
    n_pm = 0
    top_pm = -1  # a point mass with the largest score
    s_top = -math.inf  # its score
    last = -1
    for k in range(K):
        out[k] = 0.0
        if not eligible[k]:
            continue
        n_e += 1
        last = k
        if sigma[k] * C_TAIL > POINT_MASS_REL * abs(mu[k]):
            cont[n_c] = k
            cmu[n_c] = mu[k]
            csig[n_c] = sigma[k]
            cisg[n_c] = 1.0 / sigma[k]
            cval[n_c] = 1.0 if gauss else values[k]
            n_c += 1
        else:
            n_pm += 1
            s = mu[k] if gauss else values[k] * sigmoid(mu[k])
            if s > s_top or top_pm < 0:
                s_top = s
                top_pm = k
    if n_e == 0:
        return
    if n_e == 1:
        out[last] = 1.0
        return
    if n_c > 0:
        for c in range(n_c):
            acc[c] = 0.0
        # lower end of the range, a score position (log-odds s_L of value v_L): the largest support bottom
        s_L = -math.inf
        v_L = 1.0
        t_L = -math.inf
        for c in range(n_c):
            s = cmu[c] - C_TAIL * csig[c]
            t = s if gauss else cval[c] * sigmoid(s)
            if t > t_L:
                t_L = t
                s_L = s
                v_L = cval[c]
        if gauss:
            U = -math.inf
            for c in range(n_c):
                U = max(U, cmu[c] + C_TAIL * csig[c])
            s_L = _tight_lower(s_L, U, cmu, cisg, n_c)
        cut = top_pm >= 0 and s_top > (s_L if gauss else v_L * sigmoid(s_L))
        if cut:
            s_L = mu[top_pm]
            v_L = 1.0 if gauss else values[top_pm]
        # segments (v_prev top, w]: one per distinct value w, integrated in u = logit(t / w) (Gaussian: one)
        w = -math.inf
        s_prev = -math.inf  # top of the previous segment, a log-odds of value v_prev
        v_prev = 1.0
        while True:
            w_next = math.inf
            for c in range(n_c):
                if cval[c] > w:
                    w_next = min(w_next, cval[c])
            if w_next == math.inf:
                break
            w = w_next
            u_hi = -math.inf
            for c in range(n_c):
                if cval[c] == w:
                    u_hi = max(u_hi, cmu[c] + C_TAIL * csig[c])
            u_lo = max(_logit_scaled(s_prev, v_prev / w), _logit_scaled(s_L, v_L / w))
            if not u_hi > u_lo:
                continue
            for c in range(n_c):
                kink[c] = math.inf
                crat[c] = w / cval[c]
                clog[c] = math.log(crat[c])
                if cval[c] >= w:
                    lo[c] = _logit_scaled(cmu[c] - C_TAIL * csig[c], cval[c] / w)
                    hi[c] = _logit_scaled(cmu[c] + C_TAIL * csig[c], cval[c] / w)
                    if cval[c] > w:
                        kink[c] = -math.log1p(-w / cval[c])
                        hi[c] = min(hi[c], kink[c] + KINK_ABOVE)
                else:  # saturated: its scores are all below this segment
                    lo[c] = math.inf
                    hi[c] = math.inf
            trapezoid = False
            if gauss and not cut:
                s_min = math.inf
                for c in range(n_c):
                    if hi[c] > u_lo:
                        s_min = min(s_min, csig[c])
                ratio = (u_hi - u_lo) / (TRAP_SPACING * s_min)
                if ratio < TRAP_MAX_NODES - 1:
                    _trapezoid(u_lo, u_hi, max(int(math.ceil(ratio)), 2), cmu, cisg, n_c, F, g, acc)
                    trapezoid = True
            if not trapezoid:
                _segment_gl(u_lo, u_hi, gauss, cmu, csig, cisg, crat, clog, n_c, lo, hi, kink, F, g, acc, bp)
            s_prev = u_hi
            v_prev = w
        for c in range(n_c):
            out[cont[c]] = acc[c]
    pm_total = 0.0
    if n_pm > 0:
        # P(every continuous score < s_top), split among the point masses exactly at s_top
        p_top = 1.0
        for c in range(n_c):
            s_c = mu[top_pm] if gauss else _logit_scaled(mu[top_pm], values[top_pm] / cval[c])
            p_top *= _norm_cdf((s_c - cmu[c]) * cisg[c])
        n_top = 0
        for k in range(K):
            if eligible[k] and not sigma[k] * C_TAIL > POINT_MASS_REL * abs(mu[k]):
                n_top += (mu[k] if gauss else values[k] * sigmoid(mu[k])) == s_top
        for k in range(K):
            if eligible[k] and not sigma[k] * C_TAIL > POINT_MASS_REL * abs(mu[k]):
                if (mu[k] if gauss else values[k] * sigmoid(mu[k])) == s_top:
                    out[k] = p_top / n_top
                    pm_total += out[k]
    # normalise: the point masses keep their closed-form probabilities, the integrals share the rest (their
    # truncation and quadrature errors, ~1e-10)
    cont_total = 0.0
    for c in range(n_c):
        cont_total += out[cont[c]]
    if cont_total > 0.0 and cont_total < math.inf and pm_total < 1.0:
        scale = (1.0 - pm_total) / cont_total
        for c in range(n_c):
            out[cont[c]] *= scale
        return
    if pm_total > 0.0:  # the continuous arms never win
        for c in range(n_c):
            out[cont[c]] = 0.0
        inv = 1.0 / pm_total
        for k in range(K):
            out[k] *= inv
        return
    # unreachable for finite inputs (the total is ~1); fall back to the argmax of the median scores
    for k in range(K):
        scores[k] = (mu[k] if gauss else values[k] * sigmoid(mu[k])) if eligible[k] else -math.inf
    argmax_tie_probs(scores, eligible, out)


@njit(cache=True, inline="always")
def _core_scratch(K):
    """Scratch of :func:`_argmax_probs_core` for K arms: ``cont`` (K,) int64 and ``work`` (WORK_ROWS K,) float64."""
    return np.empty(K, dtype=np.int64), np.empty(WORK_ROWS * K)


# ---------------------------------------------------------------------------------------------------------------
# public kernels
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def gaussian_argmax_probs(mu, sigma, eligible, out):
    """Probability that each arm's score ``s_k ~ N(mu_k, sigma_k^2)`` (independent) is the largest.

    ``out[k] = integral phi(z) prod_{j != k} Phi((mu_k + sigma_k z - mu_j) / sigma_j) dz`` over the eligible
    arms, computed by quadrature (module docstring; absolute error ~1e-9 in ordinary cases).

    Parameters
    ----------
    mu : (K,) float64
        Score means.
    sigma : (K,) float64
        Score standard deviations, >= 0 (0 = a point mass; exactly equal point masses split their probability).
    eligible : (K,) bool
        Arms that may be chosen.
    out : (K,) float64
        Output: probabilities, 0 for ineligible arms, summing to 1 (all 0 if no arm is eligible).

    Examples
    --------
    >>> import numpy as np
    >>> out = np.empty(3)
    >>> gaussian_argmax_probs(np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0]),
    ...                       np.array([True, True, False]), out)
    >>> out
    array([0.5, 0.5, 0. ])
    """
    cont, work = _core_scratch(mu.shape[0])
    _argmax_probs_core(mu, sigma, mu, True, eligible, out, cont, work)


@njit(cache=True)
def gaussian_argmax_probs_batch(mu, sigma, eligible, out):
    """:func:`gaussian_argmax_probs` for each row.

    Parameters
    ----------
    mu, sigma : (n, K) float64
    eligible : (n, K) bool, or (1, K) for the same mask on every row
    out : (n, K) float64
    """
    _argmax_probs_rows(mu, sigma, np.empty(0), False, eligible, out)


@njit(cache=True)
def _argmax_probs_rows(mu, sigma, values, logistic, eligible, out):
    """Rows of :func:`logistic_value_argmax_probs` (``logistic``; ``values`` (K,) shared by all rows) or of
    :func:`gaussian_argmax_probs` (``values`` ignored), all with one scratch; ``eligible`` (n, K) or (1, K)."""
    n, K = mu.shape
    cont, work = _core_scratch(K)
    one = eligible.shape[0] == 1
    for i in range(n):
        elig = eligible[0] if one else eligible[i]
        if logistic:
            _logistic_row(mu[i], sigma[i], values, elig, out[i], cont, work)
        else:
            _argmax_probs_core(mu[i], sigma[i], mu[i], True, elig, out[i], cont, work)


@njit(cache=True)
def _logistic_row(mu, sigma, values, eligible, out, cont, work):
    """One row of :func:`logistic_value_argmax_probs` with caller-provided scratch (``cont`` (K,), ``work``)."""
    v_max = -math.inf
    v_min = math.inf
    for k in range(mu.shape[0]):
        if eligible[k]:
            v_max = max(v_max, values[k])
            v_min = min(v_min, values[k])
    # equal values: v sigmoid(s) is increasing in s, so the argmax is the Gaussian one
    _argmax_probs_core(mu, sigma, values, v_max == v_min, eligible, out, cont, work)


@njit(cache=True)
def logistic_value_argmax_probs(mu, sigma, values, eligible, out):
    """Probability that each arm's score ``values_k * sigmoid(s_k)``, ``s_k ~ N(mu_k, sigma_k^2)``, is the largest.

    Thompson sampling of a logistic model with per-arm revenue values. ``P(values_j sigmoid(s_j) < t) =
    Phi((logit(t / values_j) - mu_j) / sigma_j)`` for ``t < values_j``, else 1. With all eligible values equal this
    is exactly :func:`gaussian_argmax_probs` (the same code path); otherwise one segment per distinct value, each
    integrated in its own log-odds (module docstring). Absolute error ~1e-9.

    Parameters
    ----------
    mu, sigma : (K,) float64
        Mean and standard deviation (>= 0) of each arm's log-odds.
    values : (K,) float64
        Revenue value of each arm, > 0.
    eligible : (K,) bool
    out : (K,) float64
        Output probabilities (0 for ineligible arms, summing to 1).

    Examples
    --------
    >>> import numpy as np
    >>> out = np.empty(2)
    >>> logistic_value_argmax_probs(np.array([0.0, 0.0]), np.array([1.0, 1.0]), np.array([1.0, 2.0]),
    ...                             np.array([True, True]), out)
    >>> out.round(4)
    array([0.1563, 0.8437])
    """
    cont, work = _core_scratch(mu.shape[0])
    _logistic_row(mu, sigma, values, eligible, out, cont, work)


@njit(cache=True)
def logistic_value_argmax_probs_batch(mu, sigma, values, eligible, out):
    """:func:`logistic_value_argmax_probs` for each row.

    Parameters
    ----------
    mu, sigma : (n, K) float64
    values : (K,) float64
        Shared by all rows.
    eligible : (n, K) bool, or (1, K) for the same mask on every row
    out : (n, K) float64
    """
    _argmax_probs_rows(mu, sigma, values, True, eligible, out)


@njit(cache=True)
def uniform_mix(p, eligible, floor, out):
    """``out = (1 - floor) p + floor / |eligible|`` on eligible arms, 0 elsewhere (``out`` may alias ``p``).

    Parameters
    ----------
    p : (K,) float64
        Probabilities (0 on ineligible arms).
    eligible : (K,) bool
    floor : float
        Exploration floor in [0, 1].
    out : (K,) float64
    """
    K = p.shape[0]
    n_e = 0
    for k in range(K):
        if eligible[k]:
            n_e += 1
    share = floor / n_e if n_e > 0 else 0.0
    keep = 1.0 - floor
    for k in range(K):
        out[k] = keep * p[k] + share if eligible[k] else 0.0


@njit(cache=True)
def argmax_tie_probs(scores, eligible, out):
    """Deterministic argmax as probabilities: exact ties among the best eligible scores split uniformly.

    Parameters
    ----------
    scores : (K,) float64
        NaN counts as -inf.
    eligible : (K,) bool
    out : (K,) float64
        ``1 / n_best`` for each best eligible arm, 0 elsewhere (all 0 if no arm is eligible).

    Examples
    --------
    >>> import numpy as np
    >>> out = np.empty(4)
    >>> argmax_tie_probs(np.array([1.0, 3.0, 3.0, 5.0]), np.array([True, True, True, False]), out)
    >>> out
    array([0. , 0.5, 0.5, 0. ])
    """
    K = scores.shape[0]
    best = math.nan
    n_best = 0
    for k in range(K):
        if eligible[k]:
            s = scores[k] if scores[k] == scores[k] else -math.inf
            if s == best:
                n_best += 1
            elif not s < best:  # first eligible arm (best is NaN) or a larger score
                best = s
                n_best = 1
    share = 1.0 / n_best if n_best > 0 else 0.0
    for k in range(K):
        out[k] = 0.0
        if eligible[k]:
            s = scores[k] if scores[k] == scores[k] else -math.inf
            if s == best:
                out[k] = share


@njit(cache=True)
def argmax_tie_probs_batch(scores, eligible, out):
    """:func:`argmax_tie_probs` for each row: ``scores`` (n, K), ``eligible`` (n, K) or (1, K) bool, ``out`` (n, K)."""
    one = eligible.shape[0] == 1
    for i in range(scores.shape[0]):
        argmax_tie_probs(scores[i], eligible[0] if one else eligible[i], out[i])
