"""Load test of ``upsell-bandit serve`` on loopback: rank throughput and latency at concurrency 1, 16 and 64.

One server process (one uvicorn worker) serves a LinUCB policy of 6 plans and 23 features (the simulated world's
featurizer) with a short attribution window, so that its trainer applies outcomes and swaps snapshots every second
while the load runs. The trainer runs where ``serve`` puts it by default, in a child process; ``--server-args
'--trainer thread'`` measures it on a thread of the server process. A bounded, closed-loop load generator runs in separate processes (raw HTTP/1.1 over
keep-alive connections on asyncio -- much lighter than an HTTP client library, so that the generator does not
steal the server's CPU): each connection keeps exactly one request in flight, sends ``POST /rank`` with a fresh
event id and, after every 5th rank, ``POST /reward`` for that event. Latency is measured by the client, from
sending a request to reading the whole response.

For every durability mode (``fsync``: group commit, ``write``, ``memory``; see :mod:`bandit.serving`) and every
concurrency level the bench reports rank requests/s, p50 / p99 / max rank latency, rewards/s, errors (anything but
200 / 202, or a broken connection) and the snapshots the trainer published during the level, plus the machine's
load average. Results go to ``bench/results/serve.json``.

Run ``python bench/serve_bench.py`` (60 s per level and mode: about 10 minutes) or ``--seconds 5`` for a quick look;
``--modes fsync`` / ``--levels 16`` restrict the matrix. Targets on a 2-core machine: >= 3,000 rank requests/s on
one worker process, p99 <= 10 ms at concurrency 16, zero errors.

``--restart`` measures a restart instead (``bench/results/serve_restart.json``): a log directory of ``--decisions``
(10^6) logged decisions at 32 features over the 10 days before now, in parts of 10^4, a share of them rewarded
(``--rewarded``, 0.3; stamped 0-30 min after the decision, received 1 s later, one outcome part per decision part,
written by the service's own writer), and a checkpoint whose ledger settled all but the last 3 hours (1 h window).
Each start runs in a fresh process (wall time of ``DecisionService.start`` and the process's peak RSS), as the service
does it (``footers``: the part names and footers decide which decision parts and outcome row groups are read) and
reading everything (``full``: names and footers ignored), alternately, after one warm-up start (numba's cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serve.json"
ARMS = ["individual", "duo", "family", "student", "audiobooks", "podcast_plus"]
N_FEATURES = 23
TOKEN = "bench-token"
REWARD_EVERY = 5
WARMUP_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------------
# load generator (runs in worker processes)
# ----------------------------------------------------------------------------------------------------------------


def _request(path: str, body: bytes, auth: bool) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n")
    if auth:
        head += f"Authorization: Bearer {TOKEN}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match is None:
        raise ValueError("response without content-length")
    await reader.readexactly(int(match.group(1)))
    return status


async def _connection(port: int, run_id: str, worker: int, conn: int, warm_until: float, stop_at: float,
                      out: dict[str, list]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = np.random.default_rng(worker * 10_000 + conn)
    contexts = rng.normal(size=(64, N_FEATURES)).round(4).tolist()
    i = 0
    clock = time.perf_counter
    try:
        while True:
            now = clock()
            if now >= stop_at:
                break
            event_id = f"{run_id}-w{worker}-c{conn}-{i}"
            body = json.dumps({"event_id": event_id, "context": contexts[i % 64]}).encode()
            t0 = clock()
            writer.write(_request("/rank", body, False))
            status = await _read_response(reader)
            t1 = clock()
            if t0 >= warm_until:
                out["rank_ms"].append((t1 - t0) * 1e3)
                if status != 200:
                    out["errors"].append(f"rank {status}")
            i += 1
            if i % REWARD_EVERY == 0:
                body = json.dumps({"event_id": event_id, "reward": float(rng.random() < 0.3)}).encode()
                t0 = clock()
                writer.write(_request("/reward", body, True))
                status = await _read_response(reader)
                t1 = clock()
                if t0 >= warm_until:
                    out["reward_ms"].append((t1 - t0) * 1e3)
                    if status != 202:
                        out["errors"].append(f"reward {status}")
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


def _worker(port: int, run_id: str, worker: int, n_conn: int, warm_until: float, stop_at: float,
            result_path: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out: dict[str, list] = {"rank_ms": [], "reward_ms": [], "errors": []}

    async def main() -> None:
        await asyncio.gather(*(_connection(port, run_id, worker, c, warm_until, stop_at, out) for c in range(n_conn)))

    asyncio.run(main())
    np.savez(result_path, rank_ms=np.array(out["rank_ms"]), reward_ms=np.array(out["reward_ms"]),
             errors=np.array(out["errors"][:100], dtype=str), n_errors=np.array(len(out["errors"])))


# ----------------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------------


#: Server metrics read before and after each level (their difference is reported).
SERVER_COUNTERS = ("upsell_snapshots_published_total", "upsell_trainer_steps_total",
                   "upsell_trainer_step_seconds_total", "upsell_compactions_total", "upsell_compaction_seconds_total")


def _metrics(port: int) -> dict[str, float]:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {}
    for name in SERVER_COUNTERS:
        match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
        values[name] = float(match.group(1)) if match else float("nan")
    return values


def start_server(workdir: Path, mode: str, extra: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [sys.executable, "-m", "bandit.cli", "serve", "--policy", str(workdir / "policy.zip"), "--log",
            str(workdir / "logs"), "--port", str(port), "--token-file", str(workdir / "token"), "--durability", mode,
            "--attribution-window", "10s", *extra]  # the rest at its default (trainer step 1 s, compaction 30 s...)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(workdir / "server.err", "ab"))
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "server.err").read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def run_level(port: int, concurrency: int, seconds: float, workdir: Path) -> dict:
    n_workers = 1 if concurrency == 1 else 2
    per_worker = [concurrency // n_workers + (w < concurrency % n_workers) for w in range(n_workers)]
    start = time.perf_counter()
    warm_until = start + WARMUP_SECONDS + 0.5
    stop_at = warm_until + seconds
    server0 = _metrics(port)
    load0 = os.getloadavg()
    ctx = mp.get_context("fork")
    paths = [str(workdir / f"load-{concurrency}-{w}.npz") for w in range(n_workers)]
    run_id = f"c{concurrency}-{os.urandom(4).hex()}"  # event ids never repeat across levels
    procs = [ctx.Process(target=_worker, args=(port, run_id, w, per_worker[w], warm_until, stop_at, paths[w]))
             for w in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    server = {k: v - server0[k] for k, v in _metrics(port).items()}
    steps = server["upsell_trainer_steps_total"]
    rank = np.concatenate([np.load(p)["rank_ms"] for p in paths])
    reward = np.concatenate([np.load(p)["reward_ms"] for p in paths])
    n_errors = int(sum(int(np.load(p)["n_errors"]) for p in paths))
    examples = [str(e) for p in paths for e in np.load(p)["errors"][:3]]
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "load_processes": n_workers,
        "rank_requests": int(rank.size),
        "rank_per_s": rank.size / seconds,
        "rank_p50_ms": float(np.percentile(rank, 50)) if rank.size else None,
        "rank_p99_ms": float(np.percentile(rank, 99)) if rank.size else None,
        "rank_max_ms": float(rank.max()) if rank.size else None,
        "reward_per_s": reward.size / seconds,
        "reward_p99_ms": float(np.percentile(reward, 99)) if reward.size else None,
        "errors": n_errors,
        "error_examples": examples,
        "snapshots_published": server["upsell_snapshots_published_total"],
        "trainer_steps": steps,
        "trainer_step_ms_mean": 1e3 * server["upsell_trainer_step_seconds_total"] / steps if steps else None,
        "compactions": server["upsell_compactions_total"],
        "compaction_seconds": server["upsell_compaction_seconds_total"],
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
    }


# ----------------------------------------------------------------------------------------------------------------
# restart
# ----------------------------------------------------------------------------------------------------------------


def make_restart_logs(root: Path, n: int, rewarded: float) -> int:
    """The log directory and policy file of a restart (see the module docstring); returns the number of outcomes."""
    import types

    import pandas as pd

    import bandit
    from bandit.decision_log import DecisionLog
    from bandit.serving import DecisionService

    d, per = 32, 10_000
    policy = bandit.LinUCB(["solo", "duo", "family"], n_features=d, seed=0)
    now = pd.Timestamp.now(tz="UTC")
    start_us = (now - pd.Timedelta(days=10)).value // 1000
    step_us = 10 * 86_400_000_000 // n
    rng = np.random.default_rng(0)
    (root / "logs" / "outcomes").mkdir(parents=True)
    writer = types.SimpleNamespace(log_dir=root / "logs")  # (DecisionService._store_outcomes needs only log_dir)
    n_outcomes = 0
    with DecisionLog(root / "logs" / "decisions" / "arms-3", arms=policy.arm_names, policy_name="LinUCB") as log:
        for first in range(0, n, per):
            rows = min(per, n - first)
            X = rng.normal(size=(rows, d))
            ids = [f"{first + i:09d}-{rng.integers(1 << 62):016x}" for i in range(rows)]
            us = start_us + np.arange(first, first + rows, dtype=np.int64) * step_us
            log.append_batch(policy.choose_batch(X, event_ids=ids), X, timestamps=us.astype("datetime64[us]"))
            log.flush()
            hit = np.flatnonzero(rng.random(rows) < rewarded)
            stamps = us[hit] + rng.integers(0, 30 * 60_000_000, size=len(hit))
            DecisionService._store_outcomes(writer, [(ids[i], int(t), float(1 + i % 3), int(t) + 1_000_000, bool(i % 2))
                                                     for i, t in zip(hit.tolist(), stamps.tolist(), strict=True)])
            n_outcomes += len(hit)
    policy._applied_event_ids.advance((now - pd.Timedelta(hours=3)).value // 1000)
    policy.save(root / "policy.zip")
    return n_outcomes


def restart_child(root: Path, how: str) -> None:
    """One start of a service on a copy of ``root``'s policy file and its logs, in this (fresh) process; prints JSON."""
    import resource

    import bandit.serving

    if how == "full":  # part names and footers that tell nothing: every decision part and outcome row is read
        bandit.serving._decided_by = lambda part, after_us: False  # type: ignore[assignment]
        bandit.serving._name_span = lambda name: None  # type: ignore[assignment]
        index = bandit.serving._OutcomeParts._index
        bandit.serving._OutcomeParts._index = lambda self, path: (None,) * len(index(self, path))  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="restart-", dir=root))
    shutil.copy(root / "policy.zip", work / "policy.zip")  # (a start checkpoints over its policy file)
    (work / "logs").symlink_to(root / "logs")
    t0 = time.perf_counter()
    svc = bandit.serving.DecisionService(work / "policy.zip", work / "logs", attribution_window="1h",
                                         durability="write", delivery_delay=0)
    svc.start(thread=False)
    seconds = time.perf_counter() - t0
    print(json.dumps({"how": how, "seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      / 1e6, "delivery_keys": len(svc._outcome_keys), "pending": svc.trainer.n_pending}), flush=True)
    os._exit(0)  # (no close: its journal compaction and checkpoint are not part of a start)


def run_restart(n: int, rewarded: float, repeats: int, out: Path) -> dict:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if shutil.which("uptime") else ""
    print(f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}; {uptime}")
    root = Path(tempfile.mkdtemp(prefix="serve-restart-"))
    runs: list[dict] = []
    try:
        n_outcomes = make_restart_logs(root, n, rewarded)
        print(f"{n:,} decisions, {n_outcomes:,} outcomes in {len(list((root / 'logs' / 'outcomes').iterdir()))} parts")

        def start(how: str) -> dict:
            done = subprocess.run([sys.executable, __file__, "--restart-child", str(root), how], capture_output=True,
                                  text=True, check=True)
            return json.loads(done.stdout.strip().splitlines()[-1])

        start("footers")  # warm-up: numba's on-disk cache
        for r in range(repeats):
            for how in (("footers", "full") if r % 2 == 0 else ("full", "footers")):
                runs.append(start(how))
                row = runs[-1]
                print(f"{row['how']:>8}: start {row['seconds']:.2f} s, peak RSS {row['peak_rss_gb']:.2f} GB, "
                      f"{row['delivery_keys']:,} delivery keys, {row['pending']:,} pending", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = {how: {key: float(np.median([r[key] for r in runs if r["how"] == how])) for key in ("seconds",
                                                                                                 "peak_rss_gb")}
              for how in ("footers", "full")}
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if uptime else ""
    result = {
        "bench": "serve_restart",
        "description": f"DecisionService.start on {n} logged decisions at 32 features over 10 days, {n_outcomes} "
        "outcomes (one part per 10^4 decisions), the checkpoint's watermark 3 h before now, 1 h window; 'footers': "
        "as the service starts (part names and footers decide what is read), 'full': names and footers ignored "
        "(every part and row read); fresh process per start",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "uptime_before": uptime, "uptime_after": uptime_after},
        "runs": runs, "median": median,
        "ratio_full_to_footers": {key: median["full"][key] / median["footers"][key] for key in ("seconds",
                                                                                                "peak_rss_gb")},
    }
    print(f"median: footers {median['footers']['seconds']:.2f} s / {median['footers']['peak_rss_gb']:.2f} GB, full "
          f"{median['full']['seconds']:.2f} s / {median['full']['peak_rss_gb']:.2f} GB; uptime after: {uptime_after}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {out}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per level (default 60)")
    parser.add_argument("--levels", default="1,16,64", help="concurrency levels (default 1,16,64)")
    parser.add_argument("--modes", default="fsync,write,memory", help="durability modes (default all three)")
    parser.add_argument("--server-args", default="", metavar="ARGS",
                        help="extra flags for the server, e.g. '--train-every 1h --compact-every 1h' to see what the "
                        "trainer and compaction cost (default none: the protocol)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/serve.json, "
                        "with --restart serve_restart.json)")
    parser.add_argument("--restart", action="store_true", help="measure a restart instead (see the module docstring)")
    parser.add_argument("--decisions", type=int, default=1_000_000, help="--restart: logged decisions (default 10^6)")
    parser.add_argument("--rewarded", type=float, default=0.3, help="--restart: share rewarded (default 0.3)")
    parser.add_argument("--repeats", type=int, default=3, help="--restart: starts of each kind (default 3)")
    parser.add_argument("--restart-child", nargs=2, metavar=("DIR", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.restart_child:
        restart_child(Path(args.restart_child[0]), args.restart_child[1])
    if args.restart:
        return run_restart(args.decisions, args.rewarded, args.repeats, args.out or RESULTS.with_name(
            "serve_restart.json"))
    args.out = args.out or RESULTS
    levels = [int(v) for v in args.levels.split(",")]
    modes = args.modes.split(",")
    import bandit

    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    (workdir / "token").write_text(TOKEN)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if shutil.which("uptime") else ""
    print(f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}; {uptime}")
    rows = []
    try:
        for mode in modes:
            if (workdir / "logs").exists():
                shutil.rmtree(workdir / "logs")
            bandit.LinUCB(ARMS, n_features=N_FEATURES, alpha=0.5, exploration_floor=0.05, seed=0).save(
                workdir / "policy.zip")
            proc, port = start_server(workdir, mode, args.server_args.split())
            try:
                for level in levels:
                    row = {"durability": mode, **run_level(port, level, args.seconds, workdir)}
                    rows.append(row)
                    print(f"{mode:>6} c={level:<3} rank {row['rank_per_s']:8,.0f}/s  p50 {row['rank_p50_ms']:.2f} ms  "
                          f"p99 {row['rank_p99_ms']:.2f} ms  max {row['rank_max_ms']:.1f} ms  rewards "
                          f"{row['reward_per_s']:,.0f}/s  errors {row['errors']}  snapshots "
                          f"{row['snapshots_published']:.0f}  trainer step {row['trainer_step_ms_mean'] or 0:.0f} ms  compaction "
                          f"{row['compaction_seconds']:.2f} s  load {row['loadavg_after'][0]:.2f}", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if uptime else ""
    result = {
        "bench": "serve",
        "description": "upsell-bandit serve, one uvicorn worker, loopback, closed-loop load (one request in flight "
        f"per connection), a reward after every {REWARD_EVERY}th rank; LinUCB, {len(ARMS)} plans, {N_FEATURES} "
        "features; attribution window 10s, the other settings at their defaults (trainer in a child process, a step "
        "every 1 s, delivery delay 2 s, checkpoint every 60 s, journal compaction every 30 s)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "uptime_before": uptime, "uptime_after": uptime_after},
        "server_args": args.server_args,
        "targets": {"rank_per_s": 3000, "p99_ms_at_16": 10.0, "errors": 0},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"uptime after: {uptime_after}")
    print(f"results: {args.out}")
    return result


if __name__ == "__main__":
    main()
