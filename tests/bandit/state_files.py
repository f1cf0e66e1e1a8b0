"""Reading and crafting policy files for the state tests: what an attacker (or a disk) can do to a saved file."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bandit.state import _checksum


def read_members(path: Path) -> dict[str, bytes]:
    """The raw members of a policy file, by name."""
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def read_state(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, arrays) of a policy file, read without any of load's checks."""
    members = read_members(path)
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(members["policy.json"]), arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_members(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_raw(path: Path, raw_json: bytes, npz: bytes, *, checksum: bool = True) -> Path:
    """A version-2 file from raw member bytes, its checksum recomputed (what an attacker can do) unless told not."""
    members = {"policy.json": raw_json, "arrays.npz": npz}
    if checksum:
        members["policy.sha256"] = _checksum(raw_json, npz).encode("ascii")
    return write_members(path, members)


def write_state(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray] | bytes, *, checksum: bool = True) -> Path:
    """A version-2 file holding ``meta`` and ``arrays`` (or raw npz bytes), checksum recomputed unless told not."""
    npz = arrays if isinstance(arrays, bytes) else npz_bytes(arrays)
    return write_raw(path, json.dumps(meta).encode("utf-8"), npz, checksum=checksum)


def write_v1(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """The same state in the version-1 layout (two members, arrays-only checksum) that older releases wrote."""
    npz = npz_bytes(arrays)
    meta = {**meta, "format_version": 1, "arrays_sha256": hashlib.sha256(npz).hexdigest()}
    return write_members(path, {"policy.json": json.dumps(meta, indent=1).encode("utf-8"), "arrays.npz": npz})


# ----------------------------------------------------------------------------------------------------------------
# Vowpal Wabbit model headers (see bandit.policies.vw._model_header for the layout)
# ----------------------------------------------------------------------------------------------------------------


def murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32-bit, VW's ``uniform_hash``."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed & mask
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        h ^= (rotl((k * c1) & mask, 15) * c2) & mask
        h = (rotl(h, 13) * 5 + 0xE6546B64) & mask
    tail = data[4 * n :]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= (rotl((k * c1) & mask, 15) * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def forge_vw_model(model: bytes, *, options: str | None = None, bits: int | None = None, model_id: bytes = b"") -> bytes:
    """``model`` with its header's options string, bit precision or model id replaced and VW's chained header
    checksum recomputed, so that VW itself accepts the forged model."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        out = model[pos : pos + n]
        pos += n
        return out

    def u32() -> int:
        return struct.unpack("<I", take(4))[0]

    version = take(u32())
    take(u32())  # id
    marker, min_label, max_label = take(1), take(4), take(4)
    old_bits, lda, ngram, skip = take(4), take(4), take(4), take(4)
    old_options = take(u32())
    take(8)  # checksum length and checksum
    body = model[pos:]
    new_options = old_options if options is None else options.encode("ascii") + b"\0"
    new_bits = old_bits if bits is None else struct.pack("<I", bits)
    id_field = model_id + b"\0"
    # VW chains the hash over each field it reads, in this order
    fields = [struct.pack("<I", len(id_field)), id_field, marker, min_label, max_label, new_bits, lda, ngram, skip,
              struct.pack("<I", len(new_options)), new_options]
    h = 0
    for field in fields:
        h = murmur3_32(field, h)
    header = struct.pack("<I", len(version)) + version + b"".join(fields) + struct.pack("<II", 4, h)
    return header + body


def vw_options(model: bytes) -> str:
    """The options string stored in a VW model's header."""
    (n,) = struct.unpack("<I", model[:4])
    pos = 4 + n + 4 + 1 + 1 + 8 + 16
    (m,) = struct.unpack("<I", model[pos : pos + 4])
    return model[pos + 4 : pos + 4 + m - 1].decode("ascii")
