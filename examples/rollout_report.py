"""The rollout decision from logs: GO / NO-GO / NEED MORE DATA, with guardrails, references and a forecast.

Who it is for: the person who has to say "ship it" (or not) for a new offer policy, and explain why to a product
manager.

What it shows
-------------
1. **Logs.** A production stand-in -- ``LinUCB`` with a 30 % exploration floor, so every eligible offer keeps a
   known, positive probability -- makes ``--n`` offers in the simulated world (:class:`bandit.simulation.UpsellWorld`),
   learning as it goes. Each decision row carries the decision-log columns and four metric columns: ``revenue``
   (attributed revenue, the primary metric), ``converted`` (0/1), and two guardrail metrics the world simulates per
   user and offer: ``cancelled`` (the user cancelled their subscription inside the attribution window) and
   ``cannibalised`` (monthly value of paid products a conversion ended). Decisions whose attribution window is
   still open are left out.
2. **A chronological split.** The candidates are *fit functions*: :func:`offline_eval.report.rollout_report` calls
   them with the training rows only (everything before the last ``--test-days`` days) and evaluates them on the
   test rows.
3. **The report.** Paired lift in revenue per offer over the logging policy against the minimum effect worth
   shipping, guardrails with non-inferiority margins (Holm-Bonferroni across them), overlap diagnostics, and --
   next to each candidate -- the logging policy's value, the best single plan and a popularity baseline (both
   ranked on the training rows), plus each policy's hit rate. If undecided, how many more offers (and days) would
   settle it. A rolling-origin backtest shows whether the lift held in earlier windows. Each metric's a-priori
   range is stated from the catalog (:func:`bandit.simulation.demo.metric_ranges`: revenue up to the top price,
   0/1 cancellations, cannibalised value up to what one conversion can end), so below 10 outcomes the report
   judges on the small-sample bound, and every interval is clipped to what its metric can be.
4. **Outputs.** The decision and its reasons are printed; ``report.html`` (self-contained: open it offline),
   ``report.md`` and ``report.json`` are written to ``--out``.

Run ``python examples/rollout_report.py`` (30,000 offers, about a minute) or ``--small`` (8,000 offers).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bandit
from bandit.simulation import UpsellWorld, WorldConfig
from bandit.simulation.config import MAX_SEED, CatalogConfig
from bandit.simulation.demo import metric_ranges
from bandit.simulation.metrics import logged_frame
from bandit.simulation.runner import run_policy
from offline_eval import LoggedData
from offline_eval.diagnostics import DiagnosticWarning
from offline_eval.report import Guardrail, RolloutReport, rollout_report

#: Fewest days of final outcomes the candidates are fitted on, before the test days.
MIN_TRAIN_DAYS = 1.0


@dataclass
class RolloutExample:
    """What :func:`main` produced (returned for tests and notebooks)."""

    report: RolloutReport
    logs: pd.DataFrame
    files: dict[str, Path]
    fitted_on: dict[str, int]


def simulate_logs(n: int, seed: int) -> pd.DataFrame:
    """``n`` offers of the production stand-in, as decision-log rows with metric columns (final outcomes only).

    The run writes a decision log and an outcomes table (conversions and cancellations as they arrive), as in
    production; :func:`bandit.simulation.metrics.logged_frame` joins them per metric under the attribution window.
    """
    world = UpsellWorld(WorldConfig(), CatalogConfig().build(with_new_plan=False), seed=seed)
    episode = world.episode(n)
    production = bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features, alpha=0.5,
                               exploration_floor=0.3, seed=seed)
    run = run_policy(episode, production, name="production", batch_size=500)
    return logged_frame(run, episode)  # the attribution window has closed for every row


def candidate_fits(arm_names: Sequence[str], seed: int, fitted_on: dict[str, int]) -> dict[str, Any]:
    """Fit functions: each builds a fresh policy and trains it on the rows it is given (the training window)."""
    prices = {a.name: a for a in CatalogConfig().build().arms()}
    arms = [prices[a] for a in arm_names]

    def fit(name: str, make: Any) -> Any:
        def fit_on(train: LoggedData) -> Any:
            policy = make()
            converted = (train.reward > 0).astype(np.float64)  # learn conversions; arm values are the prices
            policy.update_batch(train.context, train.action, converted)
            fitted_on[name] = train.n
            return policy

        return fit_on

    d_of = {"n": 0}

    def d() -> int:
        return d_of["n"]

    def linucb() -> Any:
        return bandit.LinUCB(arms, n_features=d(), alpha=0.5, seed=seed)

    def linear_ts() -> Any:
        return bandit.LinearTS(arms, n_features=d(), seed=seed)

    def with_dim(fit_on: Any) -> Any:
        def wrapped(train: LoggedData) -> Any:
            d_of["n"] = train.n_features
            return fit_on(train)

        return wrapped

    return {"linucb": with_dim(fit("linucb", linucb)), "linear_ts": with_dim(fit("linear_ts", linear_ts))}


def main(argv: Sequence[str] | None = None) -> RolloutExample:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000, help="offers to log (default 30,000: 15 days at 2,000 a day)")
    parser.add_argument("--small", action="store_true", help="8,000 offers (a quick run)")
    parser.add_argument("--test-days", type=float, default=None,
                        help="days at the end evaluated (default 5; 1 with --small)")
    parser.add_argument("--min-effect", type=float, default=0.05,
                        help="smallest revenue lift per offer worth shipping (default 0.05)")
    parser.add_argument("--backtest-windows", type=int, default=3, help="rolling-origin windows (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = 8_000 if args.small else args.n
    test_days = args.test_days if args.test_days is not None else 1.0 if args.small else 5.0
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed {args.seed}: expected an integer between 0 and {MAX_SEED}")
    if not (math.isfinite(test_days) and test_days > 0):
        parser.error(f"--test-days {test_days:g}: expected a positive number of days")
    if not math.isfinite(args.min_effect):
        parser.error(f"--min-effect {args.min_effect}: expected a finite revenue lift per offer")
    if args.backtest_windows < 0:
        parser.error(f"--backtest-windows {args.backtest_windows}: expected 0 (no backtest) or more")
    world = WorldConfig()
    days = n / world.events_per_day - world.delay.attribution_window_days  # of offers with a final outcome
    if days < test_days + MIN_TRAIN_DAYS:
        parser.error(f"{'--small' if args.small else f'--n {n}'} and --test-days {test_days:g}: {n:,} offers leave {max(days, 0):g} days of final outcomes (the last "
                     f"{world.delay.attribution_window_days:g} day is still inside the attribution window); the "
                     f"{test_days:g} test day(s) and {MIN_TRAIN_DAYS:g} day(s) of training need at least "
                     f"{math.ceil((test_days + MIN_TRAIN_DAYS + world.delay.attribution_window_days) * world.events_per_day):,}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a directory")
    out = Path(tempfile.mkdtemp(prefix="upsell-rollout-")) if args.out is None else args.out
    out.mkdir(parents=True, exist_ok=True)

    logs = simulate_logs(n, args.seed)
    print(f"logged {len(logs):,} offers with a final outcome (LinUCB, 30% exploration floor)")
    fitted_on: dict[str, int] = {}
    candidates = candidate_fits(logs.attrs["arms"], args.seed, fitted_on)
    # the catalog's prices bound every metric a priori: revenue up to the top price, cancellations are 0/1, a
    # conversion ends at most the products it replaces; stated, they let the small-sample bound decide and clip
    # the intervals to what the metrics can be
    ranges = metric_ranges(CatalogConfig().build(with_new_plan=False), world.long_term_weight)
    guardrails = {
        # at most +0.3 points of cancellations per offer
        "cancellations": Guardrail("cancelled", margin=0.003, value_range=ranges["cancelled"]),
        # at most 0.10 of existing revenue per offer
        "cannibalisation": Guardrail("cannibalised", margin=0.10, value_range=ranges["cannibalised"]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)  # the report shows the diagnostics itself
        report = rollout_report(
            logs,
            candidates,
            baseline="logging",
            metric="revenue",
            guardrails=guardrails,
            min_effect=args.min_effect,
            reward_range=ranges["revenue"],
            test_days=test_days,
            conversion="converted",
            backtest_windows=args.backtest_windows,
        )
    print(f"\nDECISION: {report.decision}")
    for reason in report.reasons:
        print(f"  - {reason}")
    shown = report.table[report.table["metric"] == "revenue"][["policy", "role", "value", "diff", "diff_ci_low",
                                                                  "diff_ci_high", "hit_rate"]]
    print("\n" + shown.to_string(index=False, float_format="{:.3f}".format))
    files = {
        "html": report.to_html(out / "report.html"),
        "markdown": out / "report.md",
        "json": out / "report.json",
    }
    files["markdown"].write_text(report.to_markdown())
    files["json"].write_text(json.dumps(report.to_dict(), indent=2))
    print(f"\nreport: {files['html']}")
    return RolloutExample(report, logs, files, fitted_on)


if __name__ == "__main__":
    main()
