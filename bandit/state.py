"""Saving and loading policies: one versioned zip file, written atomically, never pickled, safe to load.

A policy file is untrusted input to :func:`load`: a damaged or crafted file raises ``ValueError`` naming what is
wrong (``FileNotFoundError`` when there is no file). It never executes code, never makes the library read or write
other files, and never allocates more memory than its declared content, which is checked against the limits below
before anything is read or built.

File layout (format version 2)
------------------------------
A zip archive with exactly three members, all stored uncompressed (``ZIP_STORED``), each name once:

``policy.json``
    UTF-8 JSON object (no ``NaN``/``Infinity``, no duplicate keys)::

        {"format": "upsell-bandit/policy", "format_version": 2,
         "class": "LinUCB",                      # a registered (non-abstract) Policy subclass
         "n_features": int | null,               # null only for non-contextual policies built without it
         "config": {...},                        # the constructor's keyword arguments (seed included), exactly
         "arms": [{"name": str, "value": number, "features": [number, ...] | null}, ...],   # index order
         "counters": {"n_updates": int, "revision": int},
         "rng_state": int,                       # the policy's own generator state, in [0, 2**64)
         "uid": str,                             # instance id of the policy_version, [A-Za-z0-9_-]{1,64},
                                                 # optionally "@" + a shard name (SHARD_NAME, see bandit.serving)
         "applied_events": {"watermark_us": int | null, "n_ids": int, "id_bytes": int}}
                                                 # the ledger of settled logged decisions (bandit.attribution)

``arrays.npz``
    The learned state as plain numeric arrays (an ``np.savez`` archive: a stored zip of ``.npy`` members): the
    common ``pulls`` (K,) int64, ``reward_sum`` (K,) float64 and ``active`` (K,) bool, plus each policy's
    sufficient statistics: per-arm arrays (leading axis = arm; e.g. ``A``, ``A_inv``, ``b``, ``theta`` for
    LinUCB) and arrays shared by all arms (e.g. ``Z``, ``A0_inv``, ``beta`` for the hybrid policies);
    ``VWPolicy`` adds ``model``, Vowpal Wabbit's model file as a 1-D uint8 array. The applied-events ledger (the
    decisions settled after its watermark, see :class:`bandit.attribution.AppliedEvents`) is three arrays sized by
    ``applied_events``: ``ledger_id_bytes`` (the event ids' UTF-8 bytes, concatenated, uint8),
    ``ledger_id_ends`` (each id's end offset, int64) and ``ledger_times_us`` (decision times, int64). Only little-endian float64 and
    int64, bool and uint8, C order, are accepted; every name, shape and dtype must be the one the policy class
    derives from ``policy.json`` (``Policy._state_shapes``), floats must be finite, counts non-negative,
    ``pulls`` must sum to ``counters.n_updates``, at least one arm must be active, each precision matrix and its
    stored inverse (e.g. LinUCB's ``A`` and ``A_inv``) must be symmetric positive definite within the conditioning
    limit every update checks (``Policy._inverse_pairs``); policies may check more, e.g. BetaTS's counts lie
    between the prior and the prior plus the arm's pulls.

``policy.sha256``
    64 lowercase hex digits: the SHA-256 of ``b"upsell-bandit/policy\\0"``, then for ``policy.json`` and
    ``arrays.npz`` in that order the member's length as 8 little-endian bytes followed by its bytes. One checksum
    covers everything, so editing any value (``alpha`` in ``policy.json`` as much as an array) is detected. It
    detects corruption and casual edits, not a deliberate forgery: a crafted file with a recomputed checksum goes
    through all the checks below, which are what make loading safe.

Limits (checked before the data is read or any policy object is built)
----------------------------------------------------------------------
The file at most :data:`MAX_FILE_BYTES`; ``policy.json`` at most :data:`MAX_JSON_BYTES`, nested at most
:data:`MAX_JSON_DEPTH` deep, strings at most :data:`MAX_STRING_CHARS` characters, integers below 2**64 in
magnitude; at most :data:`MAX_ARRAYS` arrays whose ``.npy`` headers (shape, dtype) must account for exactly the
member's bytes (no array is allocated from a header alone); at most :data:`MAX_ARMS` arms and
:data:`MAX_FEATURES` context or arm features. Policies add their own limits (``VWPolicy``: the model's stored
options must be exactly those its allow-listed configuration produces, see :mod:`bandit.policies.vw`).

Version policy
--------------
``format_version`` is bumped whenever the layout changes; files with a larger version are refused ("upgrade
upsell-bandit"). Version 1 (two members; ``policy.json`` carried ``"arrays_sha256"``, the SHA-256 of
``arrays.npz`` only) still loads, with all the checks above, but emits :class:`UnverifiedMetadataWarning`: its
metadata is not covered by a checksum. Saving it again writes version 2. ``save`` always writes the current
version.

``save`` writes to a temporary file in the destination directory, fsyncs it and renames it over the destination
(``os.replace``), so readers see either the old file or the new one, never a partial write. The temporary of a save
killed mid-write is removed by a later save (see :func:`save`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import inspect
import io
import json
import os
import re
import stat
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib import format as npy_format

from bandit._fs import fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from bandit.arms import Arm
    from bandit.policies.base import Policy

__all__ = [
    "DEAD_TEMPORARY_SECONDS",
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_ARMS",
    "MAX_ARRAYS",
    "MAX_FEATURES",
    "MAX_FILE_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_STRING_CHARS",
    "SHARD_NAME",
    "UnverifiedMetadataWarning",
    "load",
    "register",
    "save",
    "stale_temporaries",
]

FORMAT = "upsell-bandit/policy"
#: Bumped whenever the layout changes incompatibly; files with a larger version are refused.
FORMAT_VERSION = 2

#: Largest policy file :func:`load` reads.
MAX_FILE_BYTES = 1 << 30
#: Largest ``policy.json``.
MAX_JSON_BYTES = 16 << 20
#: Deepest nesting of JSON arrays/objects in ``policy.json`` (the top-level object is depth 1).
MAX_JSON_DEPTH = 16
#: Longest string anywhere in ``policy.json``.
MAX_STRING_CHARS = 1 << 16
#: Most arrays in ``arrays.npz``.
MAX_ARRAYS = 64
#: Most arms of a loaded policy.
MAX_ARMS = 100_000
#: Most context features (``n_features``) and arm features of a loaded policy.
MAX_FEATURES = 100_000
#: How long after its last write :func:`save` takes an unlocked temporary of its destination for one a killed save
#: left (seconds).
DEAD_TEMPORARY_SECONDS = 60.0


class UnverifiedMetadataWarning(UserWarning):
    """A version-1 policy file was loaded: its ``policy.json`` is not covered by a checksum (save it again)."""


_JSON = "policy.json"
_ARRAYS = "arrays.npz"
_CHECKSUM = "policy.sha256"
_CHECKSUM_PREFIX = FORMAT.encode("ascii") + b"\0"
_MEMBERS = {1: (_JSON, _ARRAYS), 2: (_JSON, _ARRAYS, _CHECKSUM)}
#: The dtypes arrays.npz may hold (little-endian float64/int64, bool, uint8).
_DTYPES = {np.dtype("<f8"), np.dtype("<i8"), np.dtype("|b1"), np.dtype("|u1")}
_ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: A shard name: a service's name among several serving copies of one policy file (``DecisionService(shard=...)``).
SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_UID = re.compile(rf"[A-Za-z0-9_-]{{1,64}}(?:@{SHARD_NAME.pattern})?")
_HEX64 = re.compile(rb"[0-9a-f]{64}")
#: Digits of the largest integer policy.json may hold (2**64 has 20).
_MAX_INT_DIGITS = 20
_REGISTRY: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> None:
    """Make ``cls`` loadable by :func:`load` under its class name (done by ``Policy.__init_subclass__``)."""
    _REGISTRY[cls.__name__] = cls


def _checksum(raw_json: bytes, npz: bytes) -> str:
    h = hashlib.sha256(_CHECKSUM_PREFIX)
    for part in (raw_json, npz):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def save(policy: Policy, path: str | os.PathLike[str]) -> Path:
    """Write ``policy`` to ``path`` atomically (see the module docstring for the layout).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        ``path`` is a directory or its directory is missing, or the file would exceed a limit of :func:`load`
        (:data:`MAX_JSON_BYTES`, :data:`MAX_FILE_BYTES`); nothing is written then.

    Notes
    -----
    A save killed mid-write (``kill -9``, a crash) leaves its temporary ``.<name>.<random>.tmp`` beside ``path``
    (:func:`stale_temporaries`); ``path`` itself is always the old or the new file. Each later successful save to
    ``path`` removes such leftovers once they are :data:`DEAD_TEMPORARY_SECONDS` old (on POSIX systems): only
    temporaries of ``path``, and never one a live save is writing, in this or another process (each save holds a
    ``flock`` on its temporary while writing it). Elsewhere, or to clean up at once, the owner of ``path`` removes
    what :func:`stale_temporaries` lists while nothing else saves to ``path``.
    """
    path = Path(os.fspath(path))
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory; give a file name such as 'policy.zip'")
    if not path.parent.exists():
        raise ValueError(f"path {str(path)!r}: directory {str(path.parent)!r} does not exist; create it first")
    meta, arrays = policy._get_state()
    buf = io.BytesIO()
    savez: Any = np.savez  # (its stubs type every keyword as allow_pickle)
    savez(buf, **arrays)
    npz = buf.getvalue()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    payload = json.dumps(meta, indent=1, allow_nan=False).encode("utf-8")
    # what load would refuse is refused here, before the destination (e.g. the last good checkpoint) is replaced
    if len(payload) > MAX_JSON_BYTES:
        raise ValueError(f"the policy's metadata ({len(payload)} bytes of {_JSON}: arm names and features) exceeds "
                         f"the {MAX_JSON_BYTES}-byte limit of bandit.load; nothing was written")
    if len(payload) + len(npz) > MAX_FILE_BYTES:
        raise ValueError(f"the policy's state ({len(payload) + len(npz)} bytes) exceeds the {MAX_FILE_BYTES}-byte "
                         "limit of bandit.load; nothing was written")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if fcntl is not None:  # held until the file is closed: tells a live temporary from one a killed save left
            with contextlib.suppress(OSError):  # (a file system without flock: then no temporary looks dead)
                fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr(_JSON, payload)
                zf.writestr(_ARRAYS, npz)
                zf.writestr(_CHECKSUM, _checksum(payload, npz))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    _remove_dead_temporaries(path)
    return path


def _remove_dead_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` (:func:`stale_temporaries`) that a save killed mid-write left, and only
    those: regular files (not symlinks) last written more than :data:`DEAD_TEMPORARY_SECONDS` ago that no open file
    holds locked. Every save holds an exclusive ``flock`` on its temporary from right after creating it until it
    closes it, microseconds before renaming it over ``path``; the kernel drops the lock when the process dies, and
    the age covers the instants around it. Best effort: errors are ignored. POSIX only (no ``fcntl``: nothing)."""
    if fcntl is None:
        return
    cutoff = time.time() - DEAD_TEMPORARY_SECONDS
    for tmp in stale_temporaries(path):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError while a live save holds it
            if os.lstat(tmp).st_ino == st.st_ino:  # still the file checked
                os.unlink(tmp)
        except OSError:
            continue
        finally:
            os.close(fd)


def stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files :func:`save` leaves beside ``path`` when its process dies mid-write (``kill -9``, power
    loss): ``.<name>.<random>.tmp``, never renamed over ``path``. Only the owner of ``path`` may remove them all (a
    concurrent ``save`` to the same path is writing one); :func:`save` itself removes those it can tell are dead
    (see :func:`save`)."""
    path = Path(os.fspath(path))
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    return sorted(path.parent / n for n in names if n.startswith(prefix) and n.endswith(".tmp"))


def _bad(path: Path, why: str) -> ValueError:
    return ValueError(f"cannot load policy from {str(path)!r}: {why}")


#: Everything the standard library's zip and numpy's .npy readers raise on malformed input.
_PARSE_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, TypeError, KeyError, IndexError, SyntaxError,
    NotImplementedError, OverflowError, MemoryError, RecursionError, UnicodeError, AttributeError, OSError,
)


def _stored_members(data: bytes, expected: tuple[str, ...] | None, what: str, limit: int) -> dict[str, bytes]:
    """The members of the zip archive ``data`` (all stored, uncompressed, unencrypted, unique, within ``limit``
    bytes in total); ``expected``: the exact member names, or None for ``.npy`` members named like arrays."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ValueError(f"{what} lists a member twice ({sorted(n for n in set(names) if names.count(n) > 1)})")
        if expected is not None:
            if sorted(names) != sorted(expected):
                raise ValueError(f"{what} has members {sorted(names)}, expected exactly {sorted(expected)}")
        else:
            if len(infos) > MAX_ARRAYS:
                raise ValueError(f"{what} holds {len(infos)} arrays, more than the limit {MAX_ARRAYS}")
            bad = [n for n in names if not (n.endswith(".npy") and _ARRAY_NAME.fullmatch(n[:-4]))]
            if bad:
                raise ValueError(f"{what} has members that are not arrays: {bad[:5]}")
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ValueError(f"{what} member {info.filename!r} is compressed; policy files store members as is")
            if info.flag_bits & 0x1:
                raise ValueError(f"{what} member {info.filename!r} is encrypted")
            total += info.file_size
        if total > limit or total > len(data):
            raise ValueError(f"{what} declares {total} bytes of members, more than it holds ({len(data)} bytes)")
        return {info.filename: zf.read(info) for info in infos}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"number {text[:30]} is out of the float64 range")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS or abs(value := int(text)) >= 2**64:
        raise ValueError(f"integer {text[:30]}{'...' if len(text) > 30 else ''} is too large (limit 2**64)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return out


def _parse_json(raw: bytes) -> Any:
    """``raw`` parsed under the limits of the module docstring (ValueError naming the first violation)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{_JSON} is not UTF-8 ({exc})") from None
    try:
        obj = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise ValueError(f"{_JSON} is nested too deeply (limit {MAX_JSON_DEPTH})") from None
    except ValueError as exc:
        raise ValueError(f"{_JSON} is not valid JSON ({exc})") from None
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{_JSON} is nested too deeply (limit {MAX_JSON_DEPTH})")
            items = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
            for key, value in items:
                if key is not None and len(key) > MAX_STRING_CHARS:
                    raise ValueError(f"{_JSON} has a key longer than {MAX_STRING_CHARS} characters")
                stack.append((value, depth + 1))
        elif isinstance(node, str) and len(node) > MAX_STRING_CHARS:
            raise ValueError(f"{_JSON} has a string longer than {MAX_STRING_CHARS} characters")
    return obj


def _read_arrays(npz: bytes) -> dict[str, np.ndarray]:
    """The arrays of ``arrays.npz``; every ``.npy`` header is checked against its member's size before any array
    is allocated (writeable copies, exactly the saved bytes)."""
    members = _stored_members(npz, None, _ARRAYS, len(npz))
    arrays: dict[str, np.ndarray] = {}
    for member, data in members.items():
        name = member[:-4]
        fp = io.BytesIO(data)
        try:
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fp, max_header_size=4096)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fp, max_header_size=4096)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, tokenize errors...
            raise ValueError(f"array {name!r} has a malformed .npy header ({type(exc).__name__}: {exc})") from None
        if dtype not in _DTYPES:
            raise ValueError(f"array {name!r} has dtype {dtype.str!r}; expected one of float64, int64, bool, uint8")
        if fortran:
            raise ValueError(f"array {name!r} is stored in Fortran order; policy files hold C-order arrays")
        if len(shape) > 3 or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"array {name!r} has an invalid shape {shape!r}")
        count = 1
        for n in shape:
            count *= n
        offset = fp.tell()
        if count * dtype.itemsize != len(data) - offset:
            raise ValueError(
                f"array {name!r} declares shape {shape} {dtype} ({count * dtype.itemsize} bytes) but holds "
                f"{len(data) - offset} bytes"
            )
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
        if dtype == np.bool_ and arr.view(np.uint8).max(initial=0) > 1:
            raise ValueError(f"array {name!r} holds bytes that are not booleans")
        arrays[name] = arr
    return arrays


def load(path: str | os.PathLike[str]) -> Policy:
    """Restore a policy saved with ``policy.save(path)``, whatever its class.

    The restored policy is live (not a snapshot) and makes bit-for-bit the same decisions as the saved one: the
    same state, the same generator state, the same ``policy_version``. The file is treated as untrusted input (see
    the module docstring for the checks and limits).

    Parameters
    ----------
    path : str or path-like
        A file written by ``policy.save``.

    Returns
    -------
    Policy

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Anything wrong with the file, named in the message: not a policy file (foreign or corrupt zip), a checksum
        mismatch, a newer ``format_version`` than this library reads, an unknown policy class, a value or array
        that does not fit the policy or exceeds a limit.

    Warns
    -----
    UnverifiedMetadataWarning
        For a version-1 file, whose metadata is not covered by its checksum.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from bandit import LinUCB, load
    >>> policy = LinUCB(["solo", "duo"], n_features=2, seed=0)
    >>> policy.update([1.0, 0.5], "duo", 1.0)
    >>> path = os.path.join(tempfile.mkdtemp(), "policy.zip")
    >>> _ = policy.save(path)
    >>> restored = load(path)
    >>> restored.choose([1.0, 0.5], event_id="e1") == policy.choose([1.0, 0.5], event_id="e1")
    True
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"no policy file at {str(path)!r}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _bad(path, f"the file has {size} bytes, more than the limit of {MAX_FILE_BYTES}")
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except _PARSE_ERRORS as exc:
        raise _bad(path, f"not a readable zip file ({exc}); the file is corrupt or not a policy file") from None
    if _JSON not in names or _ARRAYS not in names:
        raise _bad(path, f"not an upsell-bandit policy file (expected members {_JSON} and {_ARRAYS})")
    expected = _MEMBERS[2] if _CHECKSUM in names else _MEMBERS[1]
    try:
        members = _stored_members(data, expected, "the policy file", MAX_FILE_BYTES)
    except _PARSE_ERRORS as exc:
        raise _bad(path, f"corrupt zip file ({exc})") from None
    raw_meta, npz = members[_JSON], members[_ARRAYS]
    if len(raw_meta) > MAX_JSON_BYTES:
        raise _bad(path, f"{_JSON} has {len(raw_meta)} bytes, more than the limit of {MAX_JSON_BYTES}")
    try:
        meta = _parse_json(raw_meta)
    except ValueError as exc:
        raise _bad(path, str(exc)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"not an upsell-bandit policy file (format marker {FORMAT!r} missing)")
    version = meta.get("format_version")
    if type(version) is not int:
        raise _bad(path, f"format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"it was written in format_version {version}, newer than this library reads ({FORMAT_VERSION}); "
            "upgrade upsell-bandit to load it",
        )
    if version < 1:
        raise _bad(path, f"unknown format_version {version}")
    if set(members) != set(_MEMBERS[version]):
        raise _bad(path, f"format_version {version} files have members {list(_MEMBERS[version])}, got {sorted(members)}")
    if version == 1:
        recorded = meta.get("arrays_sha256")
        if not isinstance(recorded, str) or not hmac.compare_digest(recorded, hashlib.sha256(npz).hexdigest()):
            raise _bad(path, "checksum mismatch: arrays.npz does not match the sha256 recorded in policy.json (corrupt)")
        warnings.warn(
            f"{str(path)!r} is a format_version 1 policy file: its checksum covers the arrays only, the metadata in "
            f"{_JSON} is unverified; save the policy again to upgrade it to format_version {FORMAT_VERSION}",
            UnverifiedMetadataWarning,
            stacklevel=2,
        )
    else:
        recorded_bytes = members[_CHECKSUM]
        if not _HEX64.fullmatch(recorded_bytes):
            raise _bad(path, f"{_CHECKSUM} must hold 64 lowercase hex digits")
        if not hmac.compare_digest(recorded_bytes.decode("ascii"), _checksum(raw_meta, npz)):
            raise _bad(path, f"checksum mismatch: the file's content does not match {_CHECKSUM} (corrupt or edited)")
    cls_name = meta.get("class")
    cls = _REGISTRY.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None:
        shown = cls_name if not isinstance(cls_name, str) else cls_name[:80]
        raise _bad(path, f"unknown policy class {shown!r}; known classes: {sorted(_REGISTRY)}")
    try:
        arrays = _read_arrays(npz)
    except _PARSE_ERRORS as exc:
        raise _bad(path, f"arrays.npz is unreadable ({exc})") from None
    try:
        return cls._from_state(meta, arrays)
    except (KeyError, TypeError, ValueError, ArithmeticError, IndexError, NotImplementedError, RecursionError,
            MemoryError) as exc:
        raise _bad(path, f"inconsistent state for {cls_name} ({type(exc).__name__}: {exc})") from None


# ----------------------------------------------------------------------------------------------------------------
# checks of a policy's metadata and arrays, called by Policy._from_state before anything is built
# ----------------------------------------------------------------------------------------------------------------


def _check_int(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value < high:
        raise ValueError(f"{what} must be in [{low}, {high}), got {value}")
    return value


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _check_config_value(value: Any, what: str) -> None:
    """A constructor argument read from JSON: a scalar or a flat list of scalars (the constructor checks meaning)."""
    scalar = (type(None), bool, int, float, str)
    if isinstance(value, list):
        if not all(isinstance(v, scalar) for v in value):
            raise TypeError(f"{what} must be a list of plain values, got nested containers")
    elif not isinstance(value, scalar):
        raise TypeError(f"{what} must be a plain value, got {type(value).__name__}")


def check_meta(cls: type[Policy], meta: dict[str, Any]) -> tuple[list[Arm], dict[str, Any], int | None]:
    """The arms, constructor config and ``n_features`` of ``meta``, every field checked (types, ranges, limits).

    Raises TypeError/ValueError naming the field; nothing is built except the small :class:`~bandit.arms.Arm`
    objects.
    """
    from bandit.arms import MAX_NAME_CHARS, Arm  # (bandit.arms imports this module: imported here)

    if not isinstance(meta, dict):
        raise TypeError(f"the metadata must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in ("class", "n_features", "config", "arms", "counters", "rng_state", "uid") if k not in meta]
    if missing:
        raise ValueError(f"{_JSON} lacks the fields {missing}")
    if meta["class"] != cls.__name__:
        raise ValueError(f"class {meta['class']!r} does not match {cls.__name__}")
    n_features = meta["n_features"]
    if n_features is not None:
        _check_int(n_features, "n_features", 1, MAX_FEATURES + 1)
    elif cls._contextual:
        raise ValueError(f"n_features is null but {cls.__name__} needs it")
    raw_arms = meta["arms"]
    if not isinstance(raw_arms, list) or not 1 <= len(raw_arms) <= MAX_ARMS:
        raise ValueError(f"arms must be a list of 1 to {MAX_ARMS} arms")
    arms = []
    for i, a in enumerate(raw_arms):
        if not isinstance(a, dict) or not set(a) <= {"name", "value", "features"} or "name" not in a:
            raise ValueError(f"arms[{i}] must be an object with 'name' and optionally 'value' and 'features'")
        if not isinstance(a["name"], str) or len(a["name"]) > MAX_NAME_CHARS:
            raise ValueError(f"arms[{i}].name must be a string of at most {MAX_NAME_CHARS} characters")
        if "value" in a and not _is_number(a["value"]):
            raise TypeError(f"arms[{i}].value must be a number, got {type(a['value']).__name__}")
        feats = a.get("features")
        if feats is not None and (
            not isinstance(feats, list) or len(feats) > MAX_FEATURES or not all(_is_number(f) for f in feats)
        ):
            raise ValueError(f"arms[{i}].features must be null or a list of at most {MAX_FEATURES} numbers")
        arms.append(Arm(**a))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError("arm names are not unique")
    config = meta["config"]
    if not isinstance(config, dict):
        raise TypeError(f"config must be a JSON object, got {type(config).__name__}")
    params = inspect.signature(cls.__init__).parameters.values()
    keys = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"n_features"}
    if set(config) != keys:
        raise ValueError(
            f"config keys {sorted(config)} do not match {cls.__name__}'s arguments {sorted(keys)} "
            f"(missing {sorted(keys - set(config))}, unexpected {sorted(set(config) - keys)})"
        )
    for key, value in config.items():
        _check_config_value(value, f"config[{key!r}]")
    counters = meta["counters"]
    if not isinstance(counters, dict) or set(counters) != {"n_updates", "revision"}:
        raise ValueError("counters must be an object with exactly 'n_updates' and 'revision'")
    for key in ("n_updates", "revision"):
        _check_int(counters[key], f"counters[{key!r}]", 0, 2**63)
    _check_int(meta["rng_state"], "rng_state", 0, 2**64)
    if not isinstance(meta["uid"], str) or not _UID.fullmatch(meta["uid"]):
        raise ValueError("uid must be 1 to 64 characters of [A-Za-z0-9_-], optionally followed by '@' and a shard "
                         f"name, got {str(meta['uid'])[:80]!r}")
    return arms, dict(config), n_features


def _matrices(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 3 else arr[None]


def check_inverse_pairs(cls: type[Policy], arrays: dict[str, np.ndarray]) -> None:
    """ValueError unless every ``(precision, covariance)`` pair of ``cls._inverse_pairs`` holds, per arm, what the
    policy's updates maintain: both symmetric positive definite, with the condition-number bound the kernels check
    on every update, ``D * sum_j P_jj C_jj <= cls._max_condition`` (:func:`bandit.kernels.dense.condition_bound`).

    A crafted file (checksum recomputed) with, e.g., a negated or zeroed precision matrix would otherwise load and
    decide, but refuse every later update as ill-conditioned: a policy that silently never learns again.
    """
    for precision, covariance in cls._inverse_pairs:
        P, C = _matrices(arrays[precision]), _matrices(arrays[covariance])
        for name, M in ((precision, P), (covariance, C)):
            scale = np.abs(M).max(axis=(1, 2), initial=0.0)
            asym = np.abs(M - M.transpose(0, 2, 1)).max(axis=(1, 2), initial=0.0)
            bad = np.flatnonzero(~(asym <= 1e-9 * scale))
            if bad.size == 0:
                bad = np.array([k for k in range(M.shape[0]) if not _positive_definite(M[k])], dtype=np.int64)
            if bad.size:
                raise ValueError(
                    f"array {name!r} is not a symmetric positive definite matrix (index {int(bad[0])}); the policy "
                    "never writes such a state"
                )
        D = P.shape[-1]
        bound = D * np.einsum("kjj,kjj->k", P, C)
        bad = np.flatnonzero(~(bound <= cls._max_condition))
        if bad.size:
            raise ValueError(
                f"arrays {precision!r} and {covariance!r} (index {int(bad[0])}) are not an inverse pair within the "
                f"policy's conditioning limit (bound {float(bound[bad[0]]):.3g} > {cls._max_condition:.0e})"
            )


def _positive_definite(M: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return False
    return True


def check_arrays(
    cls: type[Policy],
    arms: list[Arm],
    n_features: int | None,
    config: dict[str, Any],
    arrays: dict[str, np.ndarray],
    n_updates: int,
) -> None:
    """ValueError unless ``arrays`` are exactly the arrays ``cls`` derives from the checked metadata (names,
    shapes, dtypes) with valid values: finite floats, non-negative counts summing to ``n_updates``, at least one
    active arm."""
    k = len(arms)
    expected: dict[str, tuple[tuple[int, ...], str]] = {
        "pulls": ((k,), "<i8"),
        "reward_sum": ((k,), "<f8"),
        "active": ((k,), "|b1"),
        **cls._state_shapes(k, n_features, config, arms),
    }
    if set(arrays) != set(expected):
        raise ValueError(f"arrays {sorted(arrays)} do not match the expected {sorted(expected)}")
    for name, (shape, dtype) in expected.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype != np.dtype(dtype):
            raise ValueError(
                f"array {name!r} has shape {arr.shape} and dtype {arr.dtype}, expected {shape} {np.dtype(dtype)} "
                f"for {k} arms and n_features={n_features}"
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"array {name!r} holds NaN or infinite values")
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise ValueError(f"array {name!r} holds negative counts")
    if not arrays["active"].any():
        raise ValueError("array 'active' marks every arm retired; a policy keeps at least one active arm")
    check_inverse_pairs(cls, arrays)
    if sum(arrays["pulls"].tolist()) != n_updates:
        raise ValueError(f"array 'pulls' sums to {sum(arrays['pulls'].tolist())}, not counters['n_updates']={n_updates}")
