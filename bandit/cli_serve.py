"""``upsell-bandit serve``: the Rank/Reward HTTP service (:mod:`bandit.service` under uvicorn).

    upsell-bandit serve --policy FILE --log DIR [--host 127.0.0.1 --port 8000 --attribution-window 1D
        --checkpoint-every 60s --token-file FILE --durability fsync|write|memory --trainer process|thread
        --features a,b,c --shard NAME]

Arguments are checked, the policy file loaded and the log directory recovered before the port is opened; a bad one
prints one line naming the flag and exits with status 2 (also when another process serves the same ``--log``). SIGINT / SIGTERM stop the service cleanly: the journals are compacted into the
Parquet logs and the policy is checkpointed.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
from pathlib import Path

from bandit._cli_common import UsageError, one_line, parse_window

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``serve`` subcommand."""
    p = sub.add_parser(
        "serve",
        help="run the Rank/Reward HTTP service (continuous learning, durable decision log, Prometheus metrics)",
        description="Serve a saved policy over HTTP: POST /rank chooses an offer with exact probabilities and logs "
        "it before answering, POST /reward records a delayed reward, a background trainer learns through the "
        "attribution window and checkpoints the policy file; GET /healthz, GET /metrics (Prometheus); admin "
        "endpoints (add/retire a plan, checkpoint) need the bearer token of --token-file.",
    )
    p.add_argument("--policy", required=True, type=Path, metavar="FILE",
                   help="policy file (policy.save()); loaded at start and checkpointed over while serving")
    p.add_argument("--log", required=True, type=Path, metavar="DIR",
                   help="log directory: decisions/arms-<K>/ (Parquet decision log), outcomes/, journal/, "
                   "rejected.jsonl (created)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--attribution-window", default="1D", metavar="WINDOW",
                   help="how long after a decision a reward counts, e.g. 1D, 48h (default: %(default)s)")
    p.add_argument("--checkpoint-every", default="60s", metavar="DURATION",
                   help="save the policy at most this long after it changed (default: %(default)s)")
    p.add_argument("--checkpoint-updates", type=int, default=None, metavar="N",
                   help="also save after N decisions were learned from (default: time only)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="file holding the bearer token required by /reward and the admin endpoints (without it "
                   "/reward is open and the admin endpoints are disabled)")
    p.add_argument("--durability", choices=["fsync", "write", "memory"], default="fsync",
                   help="when /rank and /reward answer: after the journal group is fsynced (default; survives power "
                   "loss), after it is written (survives a crash of the process), or at once (the last "
                   "--compact-every of records can be lost)")
    p.add_argument("--features", metavar="NAMES",
                   help="comma-separated feature order for contexts sent as {feature: value} (default: "
                   "<policy>.features.json beside the policy file, a JSON list, if present)")
    p.add_argument("--delivery-delay", default="2s", metavar="DURATION",
                   help="how late a reward may arrive after its timestamp; decisions expire to reward 0 that much "
                   "after their window closes (default: %(default)s)")
    p.add_argument("--combine", choices=["sum", "max", "first"], default="sum",
                   help="how several rewards of one decision combine (default: %(default)s)")
    p.add_argument("--train-every", default="1s", metavar="DURATION",
                   help="pause between trainer steps (default: %(default)s)")
    p.add_argument("--compact-every", default="30s", metavar="DURATION",
                   help="how often the journal is compacted into Parquet parts (default: %(default)s)")
    p.add_argument("--trainer", choices=["process", "thread"], default="process",
                   help="where the trainer (learning, compaction, checkpoints) runs: a child process, so that its "
                   "work never holds up a request, or a thread of the server process (default: %(default)s)")
    p.add_argument("--shard", metavar="NAME",
                   help="this service's name among several serving copies of one policy file (1-32 characters of "
                   "A-Z a-z 0-9 _ . -): it enters every policy_version (LinUCB-ab12cd34@NAME-57), so the shards' "
                   "merged logs tell their states apart; a restart with the same name continues the sequence "
                   "(default: the versions of the policy file)")
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024, metavar="N",
                   help="largest request body accepted (default: %(default)s)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn log level (default: %(default)s)")


def _duration(text: str, flag: str) -> float:
    import pandas as pd

    try:
        seconds = pd.Timedelta(text).total_seconds()
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or not any(c.isalpha() for c in text):
        raise UsageError(f"{flag} {text!r}: expected a positive duration with a unit, e.g. 1s, 60s, 5min")
    return seconds


def run(args: argparse.Namespace) -> int:
    """Check the arguments, build the service and serve until interrupted."""
    try:
        import uvicorn

        from bandit.service import create_app
        from bandit.serving import DecisionService, check_shard, load_feature_names
    except ImportError as exc:
        raise UsageError(f"serve needs the 'serve' extra ({exc.name} is missing): pip install "
                         "'upsell-bandit[serve]'") from None
    if not args.policy.is_file():
        raise UsageError(f"--policy {args.policy}: no such file (write one with policy.save(path))")
    window = parse_window(args.attribution_window)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: expected 1-65535")
    if args.max_body_bytes < 256:
        raise UsageError(f"--max-body-bytes {args.max_body_bytes}: expected at least 256")
    if args.checkpoint_updates is not None and args.checkpoint_updates < 1:
        raise UsageError(f"--checkpoint-updates {args.checkpoint_updates}: expected a positive integer")
    durations = {flag: _duration(getattr(args, name), flag) for flag, name in (
        ("--checkpoint-every", "checkpoint_every"), ("--train-every", "train_every"),
        ("--compact-every", "compact_every"))}
    try:
        delay = _delay_seconds(args.delivery_delay)
    except ValueError:
        raise UsageError(f"--delivery-delay {args.delivery_delay!r}: expected a duration with a unit, e.g. 2s") from None
    token = None
    if args.token_file is not None:
        try:
            raw = args.token_file.read_bytes()[:4097]
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {one_line(exc)}") from None
        token = raw.decode("utf-8", errors="replace").strip()
        # printable ASCII only: HTTP header bytes beyond ASCII are read as Latin-1, so a UTF-8 token (or the
        # replacement characters of undecodable bytes) could never match what a client sends
        if not token or len(raw) > 4096 or not all("!" <= c <= "~" for c in token):
            raise UsageError(f"--token-file {args.token_file}: expected one token (1-4096 printable ASCII "
                             "characters, no spaces)")
    try:
        check_shard(args.shard)
    except ValueError as exc:
        raise UsageError(f"--shard {args.shard!r}: {one_line(exc)}") from None
    if args.log.exists() and not args.log.is_dir():
        raise UsageError(f"--log {args.log}: exists and is not a directory")
    # the feature names come from --features, else from <stem>.features.json beside the policy: blame the one used
    names_from = (f"--features {args.features}" if args.features is not None
                  else f"--policy {args.policy} ({Path(args.policy).with_suffix('.features.json').name})")
    try:
        features = load_feature_names(args.policy, args.features)
    except ValueError as exc:
        raise UsageError(f"{names_from}: {one_line(exc)}") from None
    try:
        service = DecisionService(
            args.policy, args.log, attribution_window=window, durability=args.durability, feature_names=features,
            checkpoint_every=durations["--checkpoint-every"], checkpoint_updates=args.checkpoint_updates,
            combine=args.combine, delivery_delay=delay, train_every=durations["--train-every"],
            compact_every=durations["--compact-every"],
            trainer=args.trainer, shard=args.shard,
        )
    except (ValueError, TypeError) as exc:
        message = one_line(exc)
        blame = names_from if features is not None and message.startswith("feature_names") else f"--policy {args.policy}"
        raise UsageError(f"{blame}: {message}") from None
    try:
        service.start()  # recovery before the port opens; the app closes the service when uvicorn stops
    except ValueError as exc:
        raise UsageError(f"--log {args.log}: {one_line(exc)}") from None
    app = create_app(service, token=token, max_body_bytes=args.max_body_bytes)
    # everything loaded so far (numba, pandas, pyarrow, the policy) lives as long as the process: keep it out of the
    # cyclic collector's full passes, which otherwise stall every request for 100-200 ms (measured under load)
    gc.freeze()
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10)
    version = service.holder.snapshot.policy_version
    ready = (f"serving {args.policy} ({version}) on http://{args.host}:{args.port}, log {args.log}, "
             f"trainer {args.trainer}")

    class AnnouncingServer(uvicorn.Server):
        """uvicorn's server, saying one line on stderr once it listens (its own log is quiet by default)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(ready, file=sys.stderr, flush=True)

    AnnouncingServer(config).run()
    return 0


def _delay_seconds(text: str) -> float:
    """Seconds of a duration string that may be zero (``"0s"``)."""
    import pandas as pd

    seconds = pd.Timedelta(text).total_seconds()
    if not seconds >= 0 or not any(c.isalpha() for c in text):
        raise ValueError(text)
    return seconds
