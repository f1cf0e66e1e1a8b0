"""Shared helpers for the benchmark scripts: machine facts, timing, a printed table and a JSON results file."""

from __future__ import annotations

import cProfile
import io
import json
import os
import platform
import pstats
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    """Facts that make a timing interpretable: CPU count, Python, numpy/numba versions, time of the run."""
    import numba

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def time_calls_ns(fn: Callable[[int], object], n: int) -> np.ndarray:
    """Call ``fn(i)`` for i in range(n), return each call's wall time in nanoseconds, shape (n,)."""
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(i)
        out[i] = clock() - t0
    return out


def best_of(fn: Callable[[], object], repeats: int = 5) -> float:
    """Minimum wall time in seconds of ``repeats`` calls of ``fn`` (the least noisy figure on a shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def profile(label: str, fn: Callable[[], object], top: int, sort: str) -> None:
    """Run ``fn`` once under cProfile and print its ``top`` functions ordered by ``sort`` ("tottime", "cumulative")."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats(sort).print_stats(top)
    print(f"\n--- profile: {label} ---")
    print(buf.getvalue())


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Print ``rows`` as a fixed-width text table with the given column order (floats to 4 significant digits)."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)))


def write_results(name: str, payload: dict) -> Path:
    """Write ``payload`` plus machine facts to ``bench/results/<name>.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine_info(), **payload}, indent=2, default=float) + "\n")
    return path
