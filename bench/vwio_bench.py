"""VW log interop bench: DSJSON / cb_adf export and DSJSON import throughput, and VW training from the export.

Run ``python bench/vwio_bench.py`` (about a minute on a shared 2-core machine; ``--n`` to change the size). Not a
test: it prints a table and writes ``bench/results/vwio.json``. The log is the simulated upsell world
(d = 23 context features, 7 plans, per-user eligibility) logged by a uniform policy over the eligible plans, with
the realised revenue as reward. Each timing is the best of three runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, print_table, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="decisions in the log (default: 100,000)")
    args = parser.parse_args()

    import vowpalwabbit

    from bandit import VWPolicy
    from bandit.simulation.world import UpsellWorld
    from offline_eval import LoggedData
    from offline_eval.formats import read_dsjson, write_cb_adf, write_dsjson

    n = args.n
    ep = UpsellWorld(seed=7).episode(n)
    rng = np.random.default_rng(1)
    P = ep.eligible / ep.eligible.sum(axis=1, keepdims=True)
    action = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    revenue = ep.outcomes(np.arange(n), action).revenue
    data = LoggedData(ep.X, action, revenue, P[np.arange(n), action], probabilities=P, eligible=ep.eligible,
                      timestamp=ep.timestamps, event_id=[f"ev-{i}" for i in range(n)], action_names=ep.arm_names)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dsjson, cb_adf = Path(tmp) / "log.json", Path(tmp) / "log.txt"
        vw_args = VWPolicy(ep.arm_names, ep.X.shape[1], seed=0).vw_arguments()

        def train(extra: list[str]) -> None:
            workspace = vowpalwabbit.Workspace(arg_list=[*vw_args, *extra])
            workspace.finish()

        steps = [
            ("export DSJSON (write_dsjson)", lambda: write_dsjson(data, dsjson), dsjson),
            ("export cb_adf (write_cb_adf)", lambda: write_cb_adf(data, cb_adf), cb_adf),
            ("import DSJSON (read_dsjson)", lambda: read_dsjson(dsjson), dsjson),
            ("VW trains from DSJSON (--dsjson -d)", lambda: train(["--dsjson", "-d", str(dsjson)]), dsjson),
            ("VW trains from cb_adf text (-d)", lambda: train(["-d", str(cb_adf)]), cb_adf),
        ]
        for label, fn, path in steps:
            fn()  # warm up, and write the file the next steps read
            seconds = best_of(fn, repeats=3)
            rows.append({
                "step": label,
                "seconds": round(seconds, 3),
                "us_per_decision": round(seconds / n * 1e6, 2),
                "decisions_per_s": round(n / seconds),
                "file_mb": round(path.stat().st_size / 2**20, 1),
            })
    print(f"VW log interop, n = {n:,} decisions (d = {ep.X.shape[1]}, K = {len(ep.arm_names)}), best of 3\n")
    print_table(rows, ["step", "seconds", "us_per_decision", "decisions_per_s", "file_mb"])
    path = write_results("vwio", {"n": n, "d": int(ep.X.shape[1]), "k": len(ep.arm_names), "rows": rows})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
