"""Writing a file so that readers see either the old file or the complete new one (never a half-written one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_file"]


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str, **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over ``path``.

    Parent directories are created; ``path`` must not be a directory (``ValueError``). On any exception the
    temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"path must be a file to write, {str(target)!r} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
