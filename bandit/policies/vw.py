"""Vowpal Wabbit's contextual bandit with action-dependent features (``--cb_explore_adf``), behind our contract."""

from __future__ import annotations

import math
import os
import re
import shlex
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import vowpalwabbit

from bandit._validation import check_scalar
from bandit.arms import Arm
from bandit.kernels import decide
from bandit.kernels.rng import next_uniform, sample_categorical
from bandit.policies.base import Policy

__all__ = ["VWPolicy"]

#: Exploration algorithms of ``--cb_explore_adf`` supported here (each is selected by the VW flag of that name).
_EXPLORATIONS = ("squarecb", "epsilon", "cover", "bag", "synthcover", "regcb")
#: Explorers whose decision rests on one cost regressor: their scores are its predictions (else the pmf).
_REGRESSION_SCORES = frozenset({"squarecb", "epsilon", "regcb", "synthcover"})
#: Explorers that learn without importance weights (VW sets the label's probability to 1 itself).
_UNWEIGHTED = frozenset({"squarecb", "regcb"})
#: Lower clip of the probability passed with a cost to the importance-weighted explorers (weights <= 100).
_MIN_LEARN_PROBABILITY = 0.01
#: Largest feature magnitude passed to VW (its features are float32, whose largest value is 3.4e38).
_MAX_ABS_FEATURE = 1e38
#: Smaller magnitudes are passed as 0: VW's text parser turns them into 0 or inf (it scales by float32 powers of 10).
_MIN_ABS_NUMBER = 1e-29
#: Largest cost magnitude passed to VW. VW learns in float32 (largest 3.4e38) and multiplies a cost by importance
#: weights (up to 1 / 0.01) and learning-rate terms: a cost of 2e37 already turns the ``epsilon`` and ``synthcover``
#: models into inf/NaN for good (3e38 does so for every explorer), while 1e37 is still learned. 1e30 keeps two
#: orders of magnitude of headroom below the first failure at the largest importance weight.
_MAX_ABS_COST = 1e30
_CB_LABEL = vowpalwabbit.LabelType.CONTEXTUAL_BANDIT
_ACTION_PROBS = vowpalwabbit.PredictionType.ACTION_PROBS

_CHOOSE_EXPLORER = "VWPolicy chooses the explorer from exploration=..."
#: Options of ``vw_args`` that VWPolicy sets itself, and what to use instead.
_OWNED = {
    "cb_explore_adf": _CHOOSE_EXPLORER,
    "squarecb": _CHOOSE_EXPLORER,
    "epsilon": "use exploration='epsilon', epsilon=...",
    "cover": "use exploration='cover', n_policies=...",
    "bag": "use exploration='bag', n_policies=...",
    "synthcover": _CHOOSE_EXPLORER,
    "regcb": _CHOOSE_EXPLORER,
    "first": _CHOOSE_EXPLORER,
    "softmax": _CHOOSE_EXPLORER,
    "rnd": _CHOOSE_EXPLORER,
    "large_action_space": _CHOOSE_EXPLORER,
    "interactions": "use interactions=(...)",
    "quadratic": "use interactions=(...)",
    "cubic": "use interactions=(...)",
    "random_seed": "VWPolicy seeds VW from seed=...",
    "quiet": "VWPolicy always runs VW quietly",
}
#: Options that change the learning problem or make VW read/write files or streams on its own.
_FORBIDDEN = frozenset({
    "cb", "cb_adf", "cb_explore", "cbify", "ccb_explore_adf", "slates", "cats", "cats_pdf", "cb_continuous",
    "cb_explore_pdf", "cb_sample", "explore_eval", "oaa", "csoaa", "csoaa_ldf", "wap_ldf", "csoaa_rank",
    "initial_regressor", "final_regressor", "data", "passes", "testonly", "cache", "cache_file", "kill_cache",
    "daemon", "port", "predictions", "raw_predictions", "readable_model", "invert_hash", "audit", "audit_regressor",
    "help", "json", "dsjson", "save_resume", "predict_only_model", "preserve_performance_counters", "save_per_pass",
})
#: The Vowpal Wabbit options ``vw_args`` may set (an allow-list: anything else is rejected), each mapped to whether
#: it takes a value. None of them reads or writes files or streams, or changes the learning problem.
_ALLOWED: dict[str, bool] = {
    # optimiser and learning-rate schedule
    "learning_rate": True, "power_t": True, "initial_t": True, "decay_learning_rate": True, "adaptive": False,
    "normalized": False, "invariant": False, "sgd": False, "adax": False, "coin": False, "ftrl": False,
    "ftrl_alpha": True, "ftrl_beta": True, "pistol": False,
    # regularisation and loss
    "l1": True, "l2": True, "no_bias_regularization": False, "loss_function": True, "quantile_tau": True,
    # features, hashing and initial weights
    "bit_precision": True, "noconstant": False, "constant": True, "hash": True, "hash_seed": True, "ignore": True,
    "ignore_linear": True, "keep": True, "initial_weight": True, "random_weights": False, "normal_weights": False,
    "sparse_weights": False,
    # the contextual-bandit reductions and explorers
    "cb_type": True, "gamma_scale": True, "gamma_exponent": True, "elim": False, "mellowness": True,
    "cb_min_cost": True, "cb_max_cost": True, "psi": True, "nounif": False, "first_only": False, "greedify": False,
    "clip_p": True,
}
#: Largest ``--bit_precision`` (2**24 weights; with VW's per-weight state at most 512 MiB), so that no policy, and
#: no policy file, makes VW allocate more.
_MAX_BITS = 24
#: VW's one-letter options that map to a long option checked above.
_SHORT = {"q": "quadratic", "i": "initial_regressor", "f": "final_regressor", "d": "data", "t": "testonly",
          "c": "cache", "p": "predictions", "r": "raw_predictions", "a": "audit", "h": "help", "b": "bit_precision",
          "l": "learning_rate", "C": "constant", "k": "kill_cache"}
#: An option token: ``--name``, ``--name=value`` or ``-x[value]`` (a negative number such as ``-1`` is a value).
_OPTION = re.compile(r"^(--(?P<long>[A-Za-z][\w-]*)(=(?P<long_value>.*))?|-(?P<short>[A-Za-z])(?P<short_value>.*))$")
#: An option value: a number or a word (never a path, never whitespace).
_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _option_error(name: str, where: str) -> ValueError | None:
    """The error for setting ``--name`` in ``where`` if VWPolicy owns it or forbids it, else None."""
    if name in _OWNED:
        return ValueError(f"{where} must not set --{name}: {_OWNED[name]}")
    if name in _FORBIDDEN:
        return ValueError(
            f"{where} must not set --{name}: it changes the learning problem or makes VW read or write files "
            "itself (use save()/bandit.load() for models and choose()/update() for data)"
        )
    return None


def _check_vw_args(vw_args: str) -> list[str]:
    """``vw_args`` split into tokens; ValueError unless every option is on the allow-list ``_ALLOWED`` (options
    VWPolicy owns get a message saying what to use instead) with a plain value where it takes one."""
    if not isinstance(vw_args, str):
        raise TypeError(f"vw_args must be a str of extra Vowpal Wabbit options, got {type(vw_args).__name__}")
    try:
        tokens = shlex.split(vw_args)
    except ValueError as exc:
        raise ValueError(f"vw_args could not be split into options ({exc}); check its quotes") from None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        m = _OPTION.match(token)
        if m is None:
            raise ValueError(f"vw_args: {token[:40]!r} is not an option; write options as '--name value'")
        short = m.group("short")
        name = m.group("long") or _SHORT.get(short or "", "")
        if not name:
            raise ValueError(f"vw_args must not set -{short}: VWPolicy does not support that Vowpal Wabbit option")
        error = _option_error(name, "vw_args")
        if error is not None:
            raise error
        if name not in _ALLOWED:
            raise ValueError(
                f"vw_args must not set --{name}: VWPolicy accepts only these Vowpal Wabbit options: "
                f"{', '.join(sorted(_ALLOWED))}"
            )
        attached = m.group("long_value") if m.group("long") else (m.group("short_value") or None)
        if not _ALLOWED[name]:
            if attached is not None:
                raise ValueError(f"vw_args: --{name} takes no value, got {attached[:40]!r}")
        else:
            if attached is None:
                if i + 1 == len(tokens):
                    raise ValueError(f"vw_args: --{name} needs a value")
                i += 1
                attached = tokens[i]
            if not _VALUE.fullmatch(attached) or (attached.startswith("-") and not _NUMBER.fullmatch(attached)):
                raise ValueError(f"vw_args: --{name} needs a number or a word as its value, got {attached[:40]!r}")
            if name == "bit_precision" and not (attached.isdigit() and 1 <= int(attached) <= _MAX_BITS):
                raise ValueError(f"vw_args: --bit_precision must be an integer from 1 to {_MAX_BITS}, got {attached!r}")
        i += 1
    return tokens


def _check_interactions(interactions: Any) -> tuple[str, ...]:
    """``interactions`` as a tuple of namespace strings over {'U', 'A'}, each of length >= 2."""
    if isinstance(interactions, str) or not isinstance(interactions, Sequence):
        raise TypeError(
            f"interactions must be a sequence of namespace strings such as ('UA',), got {type(interactions).__name__}"
        )
    out = []
    for term in interactions:
        if not isinstance(term, str) or len(term) < 2 or set(term) - {"U", "A"}:
            raise ValueError(
                f"interactions entries must be strings of at least two of the namespaces 'U' (context) and 'A' "
                f"(action), such as 'UA' or 'UUA'; got {term!r}"
            )
        out.append(term)
    return tuple(out)


def _number(value: float) -> str:
    """``value`` written so that VW's text parser reads float32(value) (to a few ulps); 0 below ``_MIN_ABS_NUMBER``.

    Nine significant digits identify a float32; the mantissa's eight decimals keep VW's power-of-ten scaling within
    its float32 table for every magnitude from ``_MIN_ABS_NUMBER`` to ``_MAX_ABS_FEATURE``.
    """
    return f"{value:.8e}" if abs(value) >= _MIN_ABS_NUMBER else "0"


def _serialize(workspace: vowpalwabbit.Workspace) -> bytes:
    """The workspace's complete model (weights, optimiser state, counters) as bytes (VW writes files only)."""
    with tempfile.TemporaryDirectory(prefix="upsell-bandit-vw-") as tmp:
        path = os.path.join(tmp, "model.vw")
        workspace.save(path)
        with open(path, "rb") as fh:
            return fh.read()


@dataclass(frozen=True)
class _ModelHeader:
    """What the header of a VW model file (VW >= 9) says, as written by VW's ``save_load_header``."""

    version: str
    bits: int
    #: The stored command-line options (VW rebuilds the learner from them), without ``--random_seed`` and its value.
    options: tuple[str, ...]


#: Longest options string accepted in a model header (VWPolicy's are about 200 characters).
_MAX_HEADER_OPTIONS = 4096
_HEADER_VERSION = re.compile(rb"(\d{1,4})\.(\d{1,4})\.(\d{1,4})\x00")
_HEADER_OPTIONS = re.compile(rb"[ -~]*\x00")


def _model_header(model: bytes) -> _ModelHeader:
    """The header of VW model bytes, parsed without VW; ValueError naming the first field that VWPolicy never writes.

    Layout (little-endian): u32 length + version string (NUL-terminated); u32 length + model id (NUL-terminated;
    VWPolicy never sets one); ``b"m"``; min and max label (float32); ``--bit_precision`` (u32); lda (u32); number of
    ngram and of skip definitions (u32 each, then 3 bytes per definition); u32 length + the options string
    (NUL-terminated); u32 length (4) + a u32 checksum of the header (VW checks it).
    """
    view = memoryview(model)
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if n > len(view) - pos:
            raise ValueError(f"the Vowpal Wabbit model is truncated in its header ({what})")
        out = bytes(view[pos : pos + n])
        pos += n
        return out

    def u32(what: str) -> int:
        return int(struct.unpack("<I", take(4, what))[0])

    where = "the Vowpal Wabbit model header"
    n = u32("version length")
    version = take(n, "version") if 2 <= n <= 16 else b""
    m = _HEADER_VERSION.fullmatch(version)
    if m is None:
        raise ValueError(f"{where} does not start with a version string; the model bytes are not a VW model")
    if int(m.group(1)) < 9:
        raise ValueError(f"{where} says VW {version[:-1].decode()}; only models of VW 9 or later are loaded")
    if take(4, "model id length") != b"\x01\x00\x00\x00" or take(1, "model id") != b"\x00":
        raise ValueError(f"{where} carries a model id; VWPolicy never sets one")
    if take(1, "model marker") != b"m":
        raise ValueError(f"{where} lacks the model marker 'm'")
    labels = struct.unpack("<2f", take(8, "label range"))
    if not all(math.isfinite(v) for v in labels):
        raise ValueError(f"{where} has a non-finite label range {labels}")
    bits = u32("bit precision")
    if not 1 <= bits <= _MAX_BITS:
        raise ValueError(f"{where} declares --bit_precision {bits}; VWPolicy allows 1 to {_MAX_BITS}")
    for what in ("lda", "ngram count", "skip count"):
        if u32(what) != 0:
            raise ValueError(f"{where} sets {what.split()[0]}, which VWPolicy never uses")
    n = u32("options length")
    if n > _MAX_HEADER_OPTIONS:
        raise ValueError(f"{where} declares {n} bytes of options, more than the limit {_MAX_HEADER_OPTIONS}")
    raw = take(n, "options")
    if _HEADER_OPTIONS.fullmatch(raw) is None:
        raise ValueError(f"{where} has an options string that is not printable ASCII ending in NUL")
    if take(4, "checksum length") != b"\x04\x00\x00\x00":
        raise ValueError(f"{where} lacks its checksum")
    take(4, "checksum")
    tokens = raw[:-1].decode("ascii").split()
    options: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "--random_seed":
            seed = tokens[i + 1] if i + 1 < len(tokens) else ""
            if not (seed.isdigit() and len(seed) <= 20 and int(seed) < 2**64):
                raise ValueError(f"{where} has an invalid --random_seed {seed[:30]!r}")
            i += 2
            continue
        options.append(tokens[i])
        i += 1
    return _ModelHeader(version=version[:-1].decode("ascii"), bits=bits, options=tuple(options))


#: The header a fresh workspace of a given command line (seed left out) saves, per command line.
_EXPECTED_HEADERS: dict[tuple[str, ...], _ModelHeader] = {}


def _check_model_header(model: bytes, policy: VWPolicy) -> None:
    """ValueError unless ``model`` (untrusted bytes) stores exactly the options and bit precision that the freshly
    built ``policy`` (whose workspace comes from its allow-listed configuration) would store.

    VW rebuilds its learner from the options stored in a model, and honours all of them (``--readable_model``,
    ``-f``, ``--invert_hash``... write files when the workspace finishes): nothing but the options VWPolicy's own
    configuration produces may reach it.
    """
    stored = _model_header(model)
    args = policy._workspace_args()
    seed_at = args.index("--random_seed")
    key = tuple(args[:seed_at] + args[seed_at + 2 :])
    expected = _EXPECTED_HEADERS.get(key)
    if expected is None:
        expected = _model_header(_serialize(policy._vw))
        if len(_EXPECTED_HEADERS) >= 64:
            _EXPECTED_HEADERS.clear()
        _EXPECTED_HEADERS[key] = expected
    if stored.options != expected.options:
        extra = sorted(set(stored.options) - set(expected.options))
        missing = sorted(set(expected.options) - set(stored.options))
        unexpected = [t for t in extra if t.startswith("-")] or extra
        detail = f"it sets {' '.join(unexpected[:6])}" if unexpected else f"it lacks {' '.join(missing[:6])}"
        raise ValueError(
            f"the Vowpal Wabbit model stores options that the policy's configuration does not produce ({detail}); "
            f"expected exactly {' '.join(expected.options)!r}: a crafted or foreign model, refused"
        )
    if stored.bits != expected.bits:
        raise ValueError(
            f"the Vowpal Wabbit model has --bit_precision {stored.bits} but the policy's configuration gives "
            f"{expected.bits}"
        )


def _deserialize(model: bytes) -> vowpalwabbit.Workspace:
    """A workspace restored from :func:`_serialize` bytes; its model serialises back to the same bytes.

    The options are read from the model itself; ``--preserve_performance_counters`` keeps VW's running counters, so
    the restored workspace is byte-for-byte the saved one.
    """
    with tempfile.TemporaryDirectory(prefix="upsell-bandit-vw-") as tmp:
        path = os.path.join(tmp, "model.vw")
        with open(path, "wb") as fh:
            fh.write(model)
        try:
            return vowpalwabbit.Workspace(arg_list=["--quiet", "--preserve_performance_counters", "-i", path])
        except Exception as exc:  # VW raises RuntimeError and friends for corrupt models
            raise ValueError(f"the Vowpal Wabbit model bytes could not be loaded ({exc})") from None


class VWPolicy(Policy):
    """Vowpal Wabbit's contextual bandit (``--cb_explore_adf``) under the common decision contract.

    A baseline to compare our policies with: VW learns a cost regressor (or an ensemble of them) over examples
    with action-dependent features and turns its predictions into a probability distribution with the chosen
    ``exploration`` algorithm. Every decision goes through the same contract as the other policies: VW returns a
    distribution over the eligible, active arms it is shown; the policy maps it onto the K arms (0 for the others),
    mixes in ``exploration_floor``, and **draws the arm itself** from that final distribution with its own seeded
    generator (or the ``(seed, event_id)`` generator), so the reported propensity is exactly the probability used
    and the same state and ``event_id`` always give the same decision.

    Example layout. Each decision is one multi-line VW example: a shared line with the context in namespace ``U``
    (feature ``j`` holds ``x[j]``) and one line per offered arm in namespace ``A`` holding the arm's one-hot id
    (``id<index>``) and, when the arm has ``features``, ``f<i>:features[i]``. ``interactions=("UA",)`` (VW's
    ``-q UA``) crosses them, so each arm gets its own linear model of the context and arm features are shared
    across arms; VW adds a constant feature. Values reach VW as float32: magnitudes below 1e-29 are passed as 0
    and contexts with a magnitude above 1e38 are rejected.

    Costs. VW minimises cost; the policy feeds ``cost = -cost_scale * value_k * reward``, so minimising VW's
    expected cost maximises ``value_k * E[reward]``, the objective of every policy (see
    :class:`~bandit.policies.base.Policy`). ``cost_scale`` defaults to ``1 / max_k value_k`` at construction, so
    0/1 conversions give costs in [-1, 0], the scale VW's defaults (SquareCB's ``gamma_scale``, RegCB's cost
    range) are tuned for; it is then fixed (and saved) so that arms added later do not rescale what was learned.
    ``regcb`` gets ``--cb_min_cost -1 --cb_max_cost 0`` (rewards in [0, 1]) unless ``vw_args`` sets them.
    ``update``/``update_batch`` reject (``ValueError``, nothing learned) a reward whose cost exceeds 1e30 in
    magnitude: VW learns in float32 and scales costs by importance weights, and larger costs (from 2e37 on) leave
    its model non-finite for good.

    Probabilities passed to VW. ``update`` has no propensity argument. ``squarecb`` and ``regcb`` learn by plain
    regression (VW replaces the probability by 1 itself), so none is needed. ``epsilon``, ``cover``, ``bag`` and
    ``synthcover`` weight the observed cost by ``1/p``: the policy passes ``p`` = the probability it would give the
    arm now, for that context, with every active arm eligible (``exploration_floor`` included; a retired arm is
    added to the action set), clipped below at 0.01. This is exact when every update directly follows its
    decision with all arms eligible (the simulator's choose/update loop) and an approximation otherwise (the model
    changed since the decision, or the decision had a smaller eligible set). It costs one extra VW prediction per
    update.

    Scores. For ``squarecb``, ``epsilon``, ``regcb`` and ``synthcover`` the scores are VW's predicted
    ``value_k * E[reward]`` (its negated cost prediction divided by ``cost_scale``); for the ensembles (``cover``,
    ``bag``) they are VW's distribution before the floor. Ineligible arms score ``-inf``.

    Caveats. VW predicts one example at a time: ``choose_batch``, ``action_probabilities`` and ``update_batch``
    loop over the rows (``update_batch`` is therefore exactly n sequential ``update`` calls). A decision or a
    SquareCB update takes 30-50 us (d = 3-20, 4 arms), an update of the importance-weighted explorers about twice
    that: over ten times LinUCB's ``choose`` and a hundred times its batched rows. ``discount`` is not supported (VW has no per-arm
    forgetting here; only 1.0 is accepted). The saved state is VW's complete model file (weights, optimiser
    state, counters) stored as a uint8 array, so ``bandit.load`` restores a policy that decides exactly as the
    saved one (and refuses a model whose header stores any option other than those the saved configuration
    produces: VW would honour them, e.g. write a file for ``--readable_model``); VW does not save the bootstrap generator of ``bag`` nor the doubly-robust bookkeeping of ``cover``,
    so with those two a restored policy learns slightly differently from the original from then on. VW also
    counts the examples it predicts on, so ``choose`` changes the saved bytes (not the decisions or the
    ``policy_version``).

    Parameters
    ----------
    arms : list of str or Arm
        The offers; ``Arm.value`` multiplies the expected reward; ``Arm.features`` (optional, any length) become
        action features.
    n_features : int
        Length d of a context vector.
    exploration : {"squarecb", "epsilon", "cover", "bag", "synthcover", "regcb"}, default "squarecb"
        VW's exploration algorithm (``--squarecb``, ``--epsilon``, ``--cover``, ``--bag``, ``--synthcover``,
        ``--regcb``). Tune it further through ``vw_args`` (e.g. ``"--gamma_scale 50"`` for SquareCB).
    epsilon : float, default 0.05
        Exploration probability of ``exploration="epsilon"`` (in [0, 1]; ignored otherwise: ``cover`` keeps VW's
        decaying epsilon).
    n_policies : int, default 4
        Ensemble size of ``cover`` and ``bag`` (>= 2; ignored otherwise).
    interactions : sequence of str, default ("UA",)
        VW interactions between the namespaces ``U`` (context) and ``A`` (action), e.g. ``("UA", "UUA")``.
    vw_args : str, default ""
        Extra VW options such as ``"--l2 1e-6 -b 20 --power_t 0"``, from an allow-list of learning options
        (optimiser, learning rate, regularisation, loss, hashing, ``--cb_type`` and the explorers' tuning; values are
        numbers or words, ``-b`` at most 24). Options the policy sets (the exploration, interactions, seed), and any
        that change the problem or make VW read or write files, are rejected with a message saying what to use.
    cost_scale : float, optional
        Positive factor of the cost (see Costs); None means ``1 / max_k value_k`` of the initial arms.
    exploration_floor : float, default 0.0
        Uniform mass over the eligible arms mixed into every decision, in [0, 1].
    discount : float, default 1.0
        Must be 1.0 (kept for a uniform signature with the other policies).
    seed : int, optional
        Seed of the policy's generator, of per-event draws and of VW's own generator; drawn from the OS when None.

    Examples
    --------
    >>> import numpy as np
    >>> from bandit import VWPolicy
    >>> rng = np.random.default_rng(0)
    >>> policy = VWPolicy(["individual", "duo", "family"], n_features=2, seed=1)
    >>> policy.choose([0.3, -1.2]).probabilities  # nothing learned yet: uniform
    array([0.333, 0.333, 0.333])
    >>> for _ in range(500):
    ...     x = rng.normal(size=2)
    ...     best = 1 if x[0] > 0 else 2  # duo converts users with x[0] > 0, family the others
    ...     d = policy.choose(x)
    ...     policy.update(x, d.arm, float(d.index == best))
    >>> d = policy.choose([1.5, 0.0], event_id="req-42")
    >>> d.arm, d.propensity > 0.9
    ('duo', True)

    References
    ----------
    Foster, Rakhlin (2020). Beyond UCB: optimal and efficient contextual bandits with regression oracles. ICML.
    Bietti, Agarwal, Langford (2021). A contextual bandit bake-off. JMLR 22(133).
    """

    #: The VW workspace (not an array: saved through ``_get_state`` as the model bytes).
    _vw: vowpalwabbit.Workspace

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        exploration: str = "squarecb",
        epsilon: float = 0.05,
        n_policies: int = 4,
        interactions: Sequence[str] = ("UA",),
        vw_args: str = "",
        cost_scale: float | None = None,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if not isinstance(exploration, str) or exploration not in _EXPLORATIONS:
            raise ValueError(f"exploration must be one of {', '.join(map(repr, _EXPLORATIONS))}; got {exploration!r}")
        self.exploration = exploration
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
        self.n_policies = check_scalar(n_policies, "n_policies", low=2, integer=True)
        self.interactions = _check_interactions(interactions)
        self._vw_tokens = _check_vw_args(vw_args)
        self.vw_args = vw_args
        if cost_scale is not None:
            cost_scale = check_scalar(cost_scale, "cost_scale", low=0.0, low_inclusive=False)
        if discount != 1.0:
            check_scalar(discount, "discount", low=0.0, high=1.0, low_inclusive=False)  # type errors first
            raise ValueError(
                f"discount must be 1.0 for VWPolicy, got {discount}: forgetting is not supported on top of Vowpal "
                "Wabbit here (tune its learning rate through vw_args, e.g. '--power_t 0' for a constant rate)"
            )
        super().__init__(arms, n_features, exploration_floor=exploration_floor, discount=discount, seed=seed)
        self.cost_scale: float = 1.0 / float(self._values.max()) if cost_scale is None else cost_scale
        self._vw = self._new_workspace()

    @classmethod
    def _test_params(cls) -> dict[str, Any]:
        return {"exploration": "squarecb", "exploration_floor": 0.05}

    def vw_arguments(self) -> list[str]:
        """Vowpal Wabbit's command line for this policy's configuration (explorer, interactions, seed, ``vw_args``).

        To train a model outside the policy, e.g. on logged decisions exported with
        :func:`offline_eval.formats.write_dsjson` (whose examples have this policy's layout), run VW with these
        options plus its input options (``--dsjson -d FILE``) and load the result with :meth:`from_vw_model`.
        """
        return list(self._workspace_args())

    @classmethod
    def from_vw_model(
        cls, model: bytes, arms: Sequence[str | Arm], n_features: int, **config: Any
    ) -> VWPolicy:
        """A policy that decides (and goes on learning) with a VW model trained elsewhere.

        Parameters
        ----------
        model : bytes
            A VW model file's bytes (``Workspace.save``), trained with this configuration's options
            (:meth:`vw_arguments`) on examples of the policy's layout, e.g. from a DSJSON export.
        arms, n_features, **config
            As in the constructor; ``arms`` in the index order of the examples' ``id<k>`` features.

        Raises
        ------
        ValueError
            The bytes are not a VW model, or the model stores options other than those this configuration
            produces (it would decide by other rules); nothing is built.
        TypeError
            ``model`` is not bytes.
        """
        if not isinstance(model, bytes | bytearray):
            raise TypeError(f"model must be the bytes of a Vowpal Wabbit model file, got {type(model).__name__}")
        data = bytes(model)
        _model_header(data)  # malformed headers are refused before anything is built
        policy = cls(arms, n_features, **config)
        _check_model_header(data, policy)
        policy._vw = _deserialize(data)
        policy._changed()
        return policy

    # ------------------------------------------------------------------------------------------------------------
    # the VW workspace
    # ------------------------------------------------------------------------------------------------------------

    def _workspace_args(self) -> list[str]:
        """VW's command line for this policy's configuration (``vw_args`` already checked against the allow-list)."""
        explore = {
            "squarecb": ["--squarecb"],
            "epsilon": ["--epsilon", repr(self.epsilon)],
            "cover": ["--cover", str(self.n_policies)],
            "bag": ["--bag", str(self.n_policies)],
            "synthcover": ["--synthcover"],
            "regcb": ["--regcb"],
        }[self.exploration]
        user = self._vw_tokens
        if self.exploration == "regcb" or (self.exploration == "squarecb" and "--elim" in user):
            given = {t.split("=")[0] for t in user}
            if "--cb_min_cost" not in given:
                explore += ["--cb_min_cost", "-1"]
            if "--cb_max_cost" not in given:
                explore += ["--cb_max_cost", "0"]
        args = ["--cb_explore_adf", *explore, "--random_seed", str(self.seed % 2**32), "--quiet"]
        for term in self.interactions:
            args += ["--interactions", term]
        return [*args, *user]

    def _new_workspace(self) -> vowpalwabbit.Workspace:
        try:
            workspace = vowpalwabbit.Workspace(arg_list=self._workspace_args())
        except Exception as exc:  # VW raises RuntimeError and friends for bad options
            raise ValueError(f"Vowpal Wabbit rejected vw_args={self.vw_args!r} ({exc})") from None
        if workspace.get_label_type() != _CB_LABEL or workspace.get_prediction_type() != _ACTION_PROBS:
            raise ValueError(
                f"vw_args={self.vw_args!r} turns VW into a learner that does not return a distribution over actions"
                " (expected a contextual-bandit learner predicting action probabilities); remove those options"
            )
        return workspace

    def _allocate_buffers(self) -> None:
        # one action line per arm (index order): one-hot id and the arm's own features
        lines = []
        for k, arm in enumerate(self._arms):
            feats = "".join(f" f{i}:{_number(v)}" for i, v in enumerate(arm.features or ()) if v != 0.0)
            lines.append(f"|A id{k}{feats}")
        self._action_lines = lines

    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        return {}  # VW's model grows with new actions by itself; it lives in self._vw

    def _shared_line(self, x: np.ndarray, name: str, row: int | None = None) -> str:
        if x.size and float(np.abs(x).max()) > _MAX_ABS_FEATURE:
            where = "" if row is None else f" (row {row})"
            raise ValueError(
                f"{name} values are too large{where}: Vowpal Wabbit stores features as float32 (|value| <= "
                f"{_MAX_ABS_FEATURE:.3g}); standardise the features before calling the policy"
            )
        # zeros are left out (VW drops zero-valued features anyway)
        return "shared |U " + " ".join([f"{j}:{_number(v)}" for j, v in enumerate(x.tolist()) if v != 0.0])

    def _predict(self, shared: str, eligible: np.ndarray, probs: np.ndarray, scores: np.ndarray, name: str) -> None:
        """Fill ``probs`` (K,) (VW's distribution over the eligible arms, floor mixed in) and ``scores`` (K,)."""
        ks = np.flatnonzero(eligible)
        lines = self._action_lines
        vw = self._vw
        examples = vw.parse([shared, *(lines[k] for k in ks)], _CB_LABEL)
        try:
            pmf = np.array(vw.predict(examples), dtype=np.float64)
            costs = (
                np.array([e.get_partial_prediction() for e in examples[1:]], dtype=np.float64)
                if self.exploration in _REGRESSION_SCORES
                else None
            )
        finally:
            vw.finish_example(examples)
        total = pmf.sum()
        if not (np.isfinite(total) and total > 0.0 and (costs is None or np.isfinite(costs).all())):
            raise ValueError(
                f"{name} values are too large: Vowpal Wabbit returned a non-finite prediction; standardise the "
                "features before calling the policy"
            )
        pmf = np.maximum(pmf, 0.0) / total
        probs.fill(0.0)
        probs[ks] = pmf
        decide.mix_floor(probs, eligible, self.exploration_floor)
        scores.fill(-np.inf)
        scores[ks] = pmf if costs is None else costs * (-1.0 / self.cost_scale)

    def _draw(self, probs: np.ndarray, st: np.ndarray) -> int:
        return int(sample_categorical(probs, next_uniform(st)))

    def _learn(self, shared: str, k: int, reward: float, name: str) -> None:
        eligible = self._active
        if not eligible[k]:  # a retired arm's late outcome: show it alongside the active arms
            eligible = eligible.copy()
            eligible[k] = True
        if self.exploration in _UNWEIGHTED:
            prob = 1.0  # VW regresses without importance weights and overwrites the probability anyway
        else:
            n_arms = len(self._names)
            out = np.empty((2, n_arms))
            self._predict(shared, eligible, out[0], out[1], name)
            prob = max(float(out[0, k]), _MIN_LEARN_PROBABILITY)
        cost = -self.cost_scale * float(self._values[k]) * reward
        label = f"0:{_number(cost)}:{_number(prob)} "
        lines = self._action_lines
        examples = [shared, *((label + lines[j]) if j == k else lines[j] for j in np.flatnonzero(eligible).tolist())]
        self._vw.learn(examples)

    # ------------------------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------------------------

    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        self._predict(self._shared_line(x, "context"), eligible, out[0], out[1], "context")
        return self._draw(out[0], st)

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = X.shape[0]
        idx, probs, scores = self._batch_outputs(n)
        shared = [self._shared_line(X[i], "X", i) for i in range(n)]  # every row checked before VW sees any
        one_mask = eligible.shape[0] == 1
        st = self._event_state
        for i in range(n):
            self._predict(shared[i], eligible[0] if one_mask else eligible[i], probs[i], scores[i], "X")
            if sample:
                if seeds is not None:
                    st[0] = seeds[i]
                idx[i] = self._draw(probs[i], self._rng_state if seeds is None else st)
        return idx, probs, scores

    def _check_costs(self, arms: np.ndarray, rewards: np.ndarray, name: str) -> None:
        """ValueError naming ``name`` (and the row, for a batch) when a reward's cost is beyond ``_MAX_ABS_COST``.

        Such a cost overflows VW's float32 arithmetic and leaves its model non-finite for good (saved with it).
        """
        with np.errstate(over="ignore", invalid="ignore"):
            costs = np.abs(self.cost_scale * self._values[arms] * rewards)
        bad = np.flatnonzero(~(costs <= _MAX_ABS_COST))
        if bad.size:
            i = int(bad[0])
            where = f"{name}[{i}]" if name == "rewards" else name
            raise ValueError(
                f"{where} = {float(rewards[i]):.6g} is too large for Vowpal Wabbit: its cost (cost_scale * value * "
                f"reward = {float(costs[i]):.3g} in magnitude) must be at most {_MAX_ABS_COST:.0e} (VW learns in "
                "float32 and scales costs by importance weights; a larger cost makes its model non-finite for good); "
                "nothing was learned; rescale the rewards (e.g. revenue in thousands) or lower cost_scale"
            )

    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        self._check_costs(np.array([k]), np.array([reward]), "reward")
        self._learn(self._shared_line(x, "context"), k, reward, "context")
        return 0

    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        self._check_costs(arms, rewards, "rewards")  # every row checked before VW learns
        shared = [self._shared_line(X[i], "X", i) for i in range(X.shape[0])]
        for i, line in enumerate(shared):
            self._learn(line, int(arms[i]), float(rewards[i]), "X")

    # ------------------------------------------------------------------------------------------------------------
    # state: VW's model file travels as a uint8 array named "model"
    # ------------------------------------------------------------------------------------------------------------

    def snapshot(self) -> VWPolicy:
        """A read-only, thread-safe copy (see :meth:`Policy.snapshot`) with its own VW workspace, restored from the
        live model's bytes: later updates of the live policy never reach it."""
        snap = cast(VWPolicy, super().snapshot())
        snap._vw = _deserialize(_serialize(self._vw))
        return snap

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = super()._get_state()
        arrays["model"] = np.frombuffer(_serialize(self._vw), dtype=np.uint8)
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> VWPolicy:
        arrays = dict(arrays)
        model = arrays.pop("model", None)
        if not isinstance(model, np.ndarray) or model.dtype != np.uint8 or model.ndim != 1:
            raise ValueError("array 'model' (the Vowpal Wabbit model file, a 1-D uint8 array) is missing or malformed")
        data = model.tobytes()
        _model_header(data)  # malformed headers are refused before anything is built
        # the base class checks the metadata and builds the policy; its constructor checks vw_args against the
        # allow-list (bit precision included) before VW allocates anything
        policy = cast(VWPolicy, super()._from_state(meta, arrays))
        _check_model_header(data, policy)
        policy._vw = _deserialize(data)
        return policy
