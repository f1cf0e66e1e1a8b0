"""Saving and loading policies: one versioned zip file, written atomically, never pickled.

File layout (a zip archive, stored uncompressed):

``policy.json``
    ``{"format": "upsell-bandit/policy", "format_version": 1, "class": "LinUCB", "config": {...constructor
    keyword arguments...}, "arms": [{"name", "value", "features"}, ...], "n_features": int | null,
    "counters": {"n_updates": int, "revision": int}, "rng_state": int, "seed": int, "uid": str,
    "arrays_sha256": hex digest of the arrays.npz member}``.
``arrays.npz``
    The learned state as plain numeric arrays (``np.savez``; read back with ``allow_pickle=False``): the common
    ``pulls``, ``reward_sum`` and ``active`` per arm, plus each policy's sufficient statistics: per-arm arrays
    (leading axis = arm; for example ``A``, ``A_inv``, ``b``, ``theta`` for LinUCB) and arrays shared by all arms
    (for example ``Z``, ``A0_inv``, ``beta`` for the hybrid policies).

``save`` writes to a temporary file in the destination directory, fsyncs it and renames it over the destination
(``os.replace``), so readers see either the old file or the new one, never a partial write. ``load`` checks the
format marker, the version, the class name and the checksum before building anything, and raises ``ValueError``
with the reason on any mismatch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit._fs import fsync_dir

if TYPE_CHECKING:
    from bandit.policies.base import Policy

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "register", "save"]

FORMAT = "upsell-bandit/policy"
#: Bumped whenever the layout changes incompatibly; files with a larger version are refused.
FORMAT_VERSION = 1

_JSON = "policy.json"
_ARRAYS = "arrays.npz"
_REGISTRY: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> None:
    """Make ``cls`` loadable by :func:`load` under its class name (done by ``Policy.__init_subclass__``)."""
    _REGISTRY[cls.__name__] = cls


def save(policy: Policy, path: str | os.PathLike[str]) -> Path:
    """Write ``policy`` to ``path`` atomically (see the module docstring for the layout).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(os.fspath(path))
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory; give a file name such as 'policy.zip'")
    if not path.parent.exists():
        raise ValueError(f"path {str(path)!r}: directory {str(path.parent)!r} does not exist; create it first")
    meta, arrays = policy._get_state()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = buf.getvalue()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "arrays_sha256": hashlib.sha256(npz).hexdigest()}
    payload = json.dumps(meta, indent=1, allow_nan=False).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr(_JSON, payload)
                zf.writestr(_ARRAYS, npz)
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
    return path


def _bad(path: Path, why: str) -> ValueError:
    return ValueError(f"cannot load policy from {str(path)!r}: {why}")


def load(path: str | os.PathLike[str]) -> Policy:
    """Restore a policy saved with ``policy.save(path)``, whatever its class.

    The restored policy is live (not a snapshot) and makes bit-for-bit the same decisions as the saved one: the
    same state, the same generator state, the same ``policy_version``.

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
        Not a policy file (foreign or corrupt zip), a checksum mismatch, a newer ``format_version`` than this
        library reads, or an unknown policy class.

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
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _JSON not in names or _ARRAYS not in names:
                raise _bad(path, f"not an upsell-bandit policy file (expected members {_JSON} and {_ARRAYS})")
            raw_meta = zf.read(_JSON)
            npz = zf.read(_ARRAYS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise _bad(path, f"not a readable zip file ({exc}); the file is corrupt or not a policy file") from None
    except zipfile.error as exc:  # pragma: no cover - other zip errors
        raise _bad(path, f"corrupt zip file ({exc})") from None
    try:
        meta = json.loads(raw_meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"{_JSON} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"not an upsell-bandit policy file (format marker {FORMAT!r} missing)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad(path, f"format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"it was written in format_version {version}, newer than this library reads ({FORMAT_VERSION}); "
            "upgrade upsell-bandit to load it",
        )
    if version < 1:
        raise _bad(path, f"unknown format_version {version}")
    digest = hashlib.sha256(npz).hexdigest()
    if meta.get("arrays_sha256") != digest:
        raise _bad(path, "checksum mismatch: arrays.npz does not match the sha256 recorded in policy.json (corrupt)")
    cls_name = meta.get("class")
    cls = _REGISTRY.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None:
        raise _bad(path, f"unknown policy class {cls_name!r}; known classes: {sorted(_REGISTRY)}")
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as data:
            arrays: dict[str, Any] = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise _bad(path, f"arrays.npz is unreadable ({exc})") from None
    try:
        return cls._from_state(meta, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"inconsistent state for {cls_name} ({exc})") from None
