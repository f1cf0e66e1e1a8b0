"""evaluate_parquet: batch-by-batch evaluation of a Parquet decision log equals evaluate() on the loaded log."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
from scale_logs import add_duplicates, old_form, write_log
from test_accumulators import assert_tables_equal, every_estimator

from offline_eval import DR, IPS, SNDR, SNIPS, LoggedData, duplicate_ids, evaluate, streaming
from offline_eval.diagnostics import DiagnosticWarning
from offline_eval.reward_models import MRDRRewardModel, RidgeRewardModel
from offline_eval.schema import DecisionLogWarning
from offline_eval.streaming import evaluate_parquet


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("log")
    policies = write_log(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = LoggedData.from_parquet(path)
    return path, policies, data


def messages(caught) -> list[str]:
    return sorted(str(w.message) for w in caught if issubclass(w.category, UserWarning))


@pytest.mark.parametrize("kind", ["auto", "normal"])
def test_streaming_equals_in_memory_with_every_estimator(log, kind):
    path, policies, data = log
    estimators = every_estimator(kind)
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        want = evaluate(data, policies, estimators)
        # from_parquet warned about the rows without reward when the fixture loaded them: say it again here
        warnings.warn("dropped 25 of 6000 rows with a missing reward (outcome not joined yet); pass "
                      'missing_reward="raise" to fail instead', UserWarning, stacklevel=1)
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        got = evaluate_parquet(path, policies, estimators, batch_rows=700)
    assert_tables_equal(got, want)
    assert messages(got_warnings) == messages(want_warnings)
    assert got.recommended.sum() == len(policies)
    assert (got.estimator == "DR-DM blend").sum() == len(policies)  # computed from the rows, as in memory


def test_default_estimators_on_a_pyarrow_dataset_and_a_file_list(log):
    import pyarrow.dataset as ds

    path, policies, data = log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate(data, policies)
        files = sorted(path.glob("part-*.parquet"))
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        got_dataset = evaluate_parquet(dataset, policies, batch_rows=1000)
        got_files = evaluate_parquet(files, policies)
    assert_tables_equal(got_dataset, want)
    assert_tables_equal(got_files, want)
    assert set(want.interval) >= {"el-ips", "el"}  # small log: the EL intervals, from the retained rows


class OneCallerAtATime:
    """A policy that fails when two threads call ``action_probabilities`` at once (policies need not be
    thread-safe: the passes' worker threads must take turns on one)."""

    def __init__(self, policy):
        self.policy = policy
        self.busy = threading.Lock()
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def action_probabilities(self, X, eligible=None):
        if not self.busy.acquire(blocking=False):
            raise AssertionError("action_probabilities called by two threads at once")
        try:
            self.calls += 1
            time.sleep(0.002)  # a window for a second caller
            return self.policy.action_probabilities(X, eligible)
        finally:
            self.busy.release()


def test_batch_size_and_threads_do_not_change_the_result(log, monkeypatch):
    path, policies, _ = log
    estimators = [IPS(interval="normal"), SNIPS(interval="normal"), DR(reward_model=RidgeRewardModel(),
                                                                     interval="normal")]
    tables = []
    for batch_rows, threads in ((97, 4), (5000, 1)):
        monkeypatch.setattr(streaming, "PASS_THREADS", threads)
        target = OneCallerAtATime(policies["linucb"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tables.append(evaluate_parquet(path, {"linucb": target, "solo": "solo"}, estimators, batch_rows=batch_rows))
        assert target.calls >= 5975 // batch_rows  # one call per batch (6000 rows, 25 without a reward)
    assert_tables_equal(tables[0], tables[1])


class ConcurrentScorer:
    """A target whose class opts in to concurrent scoring; records the most calls that ran at once."""

    action_probabilities_thread_safe = True

    def __init__(self, policy):
        self.policy = policy
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0

    def action_probabilities(self, X, eligible=None):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.005)  # a window for a second caller
            return self.policy.action_probabilities(X, eligible)
        finally:
            with self.lock:
                self.running -= 1


def test_targets_that_opt_in_are_scored_by_several_threads_at_once_with_the_same_result(log, monkeypatch):
    path, policies, _ = log
    estimators = [IPS(interval="normal"), SNIPS(interval="normal")]
    monkeypatch.setattr(streaming, "PASS_THREADS", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate_parquet(path, {"linucb": policies["linucb"]}, estimators, batch_rows=5000)
        monkeypatch.setattr(streaming, "PASS_THREADS", 4)
        target = ConcurrentScorer(policies["linucb"])
        got = evaluate_parquet(path, {"linucb": target}, estimators, batch_rows=97)
        direct = evaluate_parquet(path, {"linucb": policies["linucb"]}, estimators, batch_rows=97)
    assert target.calls >= 5975 // 97 and target.most >= 2  # the batches were scored concurrently
    assert_tables_equal(got, want)
    assert_tables_equal(direct, want)
    # the opt-in is read on the class: a wrapper forwarding attributes to the policy (OneCallerAtATime) is locked
    assert streaming.scores_concurrently(policies["linucb"]) and streaming.scores_concurrently(target)
    assert not streaming.scores_concurrently(OneCallerAtATime(policies["linucb"]))


def test_ordered_map_keeps_the_order_and_raises_in_turn():
    def slow_first(i):
        time.sleep(0.02 if i % 3 == 0 else 0.0)  # early items finish last
        if i == 7:
            raise ValueError("item 7")
        return i * i

    assert list(streaming.ordered_map(slow_first, range(7), threads=3)) == [i * i for i in range(7)]
    assert list(streaming.ordered_map(slow_first, range(7), threads=1)) == [i * i for i in range(7)]
    got = []
    with pytest.raises(ValueError, match="item 7"):
        for value in streaming.ordered_map(slow_first, range(20), threads=3):
            got.append(value)
    assert got == [i * i for i in range(7)]


def test_prefetched_keeps_the_order_raises_in_turn_and_stops_its_thread():
    drawn = []

    def items(fail_at):
        for i in range(50):
            if i == fail_at:
                raise ValueError(f"item {i}")
            drawn.append(i)
            yield i

    with streaming.prefetched(items(None)) as it:
        assert list(it) == list(range(50))
    got = []
    with pytest.raises(ValueError, match="item 9"), streaming.prefetched(items(9)) as it:
        got.extend(it)
    assert got == list(range(9))
    drawn.clear()
    with streaming.prefetched(items(None), depth=2) as it:
        assert next(it) == 0
    # left after one item: the thread drew at most the queue's depth and one more, then stopped
    assert len(drawn) <= 4
    assert not any(t.name == "offline_eval-prefetch" for t in threading.enumerate())


def test_bad_arguments_name_what_is_wrong(log, tmp_path):
    path, policies, data = log
    with pytest.raises(TypeError, match="per-row probability arrays need the rows in memory"):
        evaluate_parquet(path, {"array": np.full((data.n, 4), 0.25)})
    with pytest.raises(ValueError, match="batch_rows must be a positive int"):
        evaluate_parquet(path, policies, batch_rows=0)
    with pytest.raises(ValueError, match="does not exist"):
        evaluate_parquet(tmp_path / "nowhere", policies)
    with pytest.raises(TypeError, match="non-empty mapping"):
        evaluate_parquet(path, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        with pytest.raises(ValueError, match="no decision-log part files"):
            evaluate_parquet(tmp_path, policies)


def test_the_scale_modules_import_pyspark_and_bandit_lazily():
    import subprocess
    import sys

    code = ("import sys, offline_eval.streaming, offline_eval.spark, offline_eval.accumulators\n"
            "assert 'pyspark' not in sys.modules, 'pyspark imported'\n"
            "assert not any(m == 'bandit' or m.startswith('bandit.') for m in sys.modules), 'bandit imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_repeated_event_ids_are_dropped_as_in_memory(tmp_path, monkeypatch):
    policies = write_log(tmp_path, n=3000, parts=3)
    repeated = add_duplicates(tmp_path)
    estimators = [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel()), DR()]
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        want = evaluate(LoggedData.from_parquet(tmp_path), policies, estimators)
    dup_warnings = [str(w.message) for w in want_warnings if w.category is DecisionLogWarning]
    assert dup_warnings and "holds 6 row(s)" in dup_warnings[0] and f"{len(repeated)} id(s)" in dup_warnings[0]
    monkeypatch.setattr(duplicate_ids, "BUCKET_ROWS", 700)  # 3006 rows: the hashes spill to 8 bucket files
    for cache_bytes in (0, 1 << 30):  # the reward-model columns read every pass, or kept after the first
        with warnings.catch_warnings(record=True) as got_warnings:
            warnings.simplefilter("always")
            got = evaluate_parquet(tmp_path, policies, estimators, batch_rows=400, cache_bytes=cache_bytes)
        assert_tables_equal(got, want)
        assert messages(got_warnings) == messages(want_warnings)


def test_batches_prepared_by_the_worker_threads_are_those_of_the_reading_thread(tmp_path, monkeypatch):
    """_Log.map_batches (the evaluation pass: the reading thread decodes and hashes the ids, the worker threads prepare
    the batches) maps the tables _Log.batches yields (prepared by the reading thread), in log order, each at the
    position of its first row in the log, with the same rows dropped for a missing reward, the same repeated ids found
    (the hashes spilled to bucket files) and, in a quarantining pass, the same rows quarantined."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_log(tmp_path, n=3000, parts=3)
    add_duplicates(tmp_path)
    part = sorted(tmp_path.glob("part-*.parquet"))[2]
    table = pq.read_table(part)
    propensity = table.column("propensity").to_numpy().copy()
    propensity[[7, 300]] = 2.0  # two rows break the contract
    pq.write_table(table.set_column(table.schema.get_field_index("propensity"), "propensity", pa.array(propensity)),
                   part)
    monkeypatch.setattr(duplicate_ids, "BUCKET_ROWS", 700)  # 3006 rows: the hashes spill to 8 bucket files
    columns = ["action", "reward", "propensity", "probabilities", "eligible", "context"]

    def run(log, mapped):
        out = []
        try:
            if mapped:
                for item in log.map_batches(lambda t, start: (start, t.to_pydict()), columns, 250):
                    out.append(item)
            else:
                start = 0
                for t, dropped in log.batches(columns, 250):
                    out.append(((start, t.to_pydict()) if t.num_rows else None, t.num_rows, dropped))
                    start += 250  # each part's 1000 rows are cut into batches of 250 (the duplicates part: 6)
        except streaming._Restart:
            out.append("restart")
        return out, log.duplicates.positions.tolist(), dict(log.quarantined.counts)

    for threads in (1, 3):
        monkeypatch.setattr(streaming, "PASS_THREADS", threads)
        logs = [streaming._Log(tmp_path), streaming._Log(tmp_path)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DecisionLogWarning)
            first = [run(log, mapped) for log, mapped in zip(logs, (False, True), strict=True)]
        assert first[0] == first[1] and first[0][0][-1] == "restart" and len(first[0][1]) == 6
        for log in logs:
            log.quarantine = True
        again = [run(log, mapped) for log, mapped in zip(logs, (False, True), strict=True)]
        assert again[0] == again[1] and again[0][2] == {"propensity": 2, "propensity_mismatch": 2}
        assert sum(m for _, m, _ in again[0][0]) == 3006 - 6 - 25 - 2  # repeated, without a reward, quarantined


def test_old_and_new_parts_mixed_give_the_new_form_result_bit_for_bit(log, tmp_path):
    """Parts of both element forms (old: nullable list elements) alternating, first part of either form: a directory,
    and a pyarrow dataset of it (whose schema pyarrow takes from the first file), evaluate as the new-form log."""
    import pandas as pd
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path, policies, _ = log
    # normal intervals: the read path is under test, not the (slower) small-log intervals
    estimators = [IPS(interval="normal"), SNIPS(interval="normal"), DR(reward_model=RidgeRewardModel(), interval="normal")]
    targets = {"linucb": policies["linucb"], "always solo": "solo"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate_parquet(path, targets, estimators, batch_rows=1000)
        for first in ("old", "new"):
            mixed = tmp_path / f"{first}_first"
            mixed.mkdir()
            for i, part in enumerate(sorted(path.glob("part-*.parquet"))):
                table = pq.read_table(part)
                pq.write_table(old_form(table) if (i % 2 == 0) == (first == "old") else table, mixed / part.name)
            for source in (mixed, ds.dataset(str(mixed), format="parquet")):
                pd.testing.assert_frame_equal(evaluate_parquet(source, targets, estimators, batch_rows=1000), want)


def test_row_groups_read_batch_by_batch_are_the_scanners_batches(log, tmp_path, monkeypatch):
    """read_row_groups (a log directory's reader; also with the context decoded apart, read_context_apart) cuts the
    batches a pyarrow dataset scanner cuts -- per row group, the last of each shorter, also when batch_rows exceeds a
    row group -- with the same values and the dataset's types (old-form and new-form parts, row groups of unequal
    sizes); and a directory evaluates bit for bit as a dataset of it, whose scan is the reference."""
    import pandas as pd
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path, policies, _ = log
    for i, part in enumerate(sorted(path.glob("part-*.parquet"))):
        table = pq.read_table(part)
        pq.write_table(old_form(table) if i == 1 else table, tmp_path / part.name, row_group_size=[700, 1100][i % 2])
    reader = streaming._Log(tmp_path)
    assert reader.files is not None
    scanned = streaming._Log(ds.dataset(str(tmp_path), format="parquet"))
    assert scanned.files is None
    columns = ["action", "reward", "context", "probabilities", "eligible", "event_id"]
    for batch_rows, pass_threads in ((64, 1), (500, 64), (700, 1), (4000, 64)):
        # the columns decoded on pyarrow's threads (more cores than worker threads) or by the calling thread
        monkeypatch.setattr(streaming, "PASS_THREADS", pass_threads)
        # the context and ids decoded on a thread of their own (read_context_apart) or with the other columns
        apart = batch_rows in (64, 700)
        got = list(reader._record_batches(columns, batch_rows, apart=apart))
        want = list(scanned._record_batches(columns, batch_rows))
        assert [b.num_rows for b in got] == [b.num_rows for b in want]
        assert max(b.num_rows for b in got) == min(batch_rows, 1100) and sum(b.num_rows for b in got) == 6000
        for g, w in zip(got, want, strict=True):
            assert g.schema.names == columns
            assert [f.type for f in g.schema] == [f.type for f in w.schema] == [
                reader.dataset.schema.field(c).type for c in columns]  # the old part's nullable elements kept
            assert g.to_pydict() == w.to_pydict()
    monkeypatch.undo()
    estimators = [IPS(interval="normal"), SNIPS(interval="normal")]
    targets = {"linucb": policies["linucb"], "always solo": "solo"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want_table = evaluate_parquet(ds.dataset(str(tmp_path), format="parquet"), targets, estimators, batch_rows=500)
        pd.testing.assert_frame_equal(evaluate_parquet(tmp_path, targets, estimators, batch_rows=500), want_table)


def test_a_null_element_of_an_old_part_is_reported_as_before(log, tmp_path):
    """A null context element in an old part after a new one (so a dataset of the directory takes the new form's
    schema from its first file) fails its batch's validation as it did before the new form, and is quarantined as a
    NaN in a new-form part is."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path, policies, _ = log
    parts = sorted(path.glob("part-*.parquet"))
    old, nan = tmp_path / "old", tmp_path / "nan"
    for directory in (old, nan):
        directory.mkdir()
        pq.write_table(pq.read_table(parts[0]), directory / parts[0].name)
    table = pq.read_table(parts[2])
    pq.write_table(old_form(table, ("context", 3, 1)), old / parts[2].name)
    context = table.column("context").combine_chunks()
    values = context.flatten().to_numpy().copy()
    values[3 * context.type.list_size + 1] = np.nan
    pq.write_table(table.set_column(table.schema.get_field_index("context"), table.schema.field("context"),
                                    pa.FixedSizeListArray.from_arrays(pa.array(values), type=context.type)),
                   nan / parts[2].name)
    message = r"context must be finite; 1 of 500 rows violate it \(first at row 3\); impute or drop missing features"
    targets, estimators = {"linucb": policies["linucb"]}, [IPS(interval="normal")]
    for source in (old, ds.dataset(str(old), format="parquet")):
        with pytest.raises(ValueError, match=message):
            evaluate_parquet(source, targets, estimators, batch_rows=500, invalid_rows="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        warnings.simplefilter("ignore", DiagnosticWarning)
        want = evaluate_parquet(nan, targets, estimators, batch_rows=500)
        got = evaluate_parquet(ds.dataset(str(old), format="parquet"), targets, estimators, batch_rows=500)
    assert sum(want.attrs["quarantined"].values()) == 1
    assert got.attrs["quarantined"] == want.attrs["quarantined"]
    pd.testing.assert_frame_equal(got, want)


def test_duplicate_finder_resolves_hash_collisions_on_the_ids(monkeypatch):
    import pandas as pd
    import pyarrow as pa

    rng = np.random.default_rng(3)
    ids = [f"u{v}" for v in rng.integers(0, 400, 1000)]
    real = duplicate_ids.id_hashes
    # a 3-bit hash: almost every id collides with others; the result must still follow the ids themselves
    monkeypatch.setattr(duplicate_ids, "id_hashes", lambda a: (real(a) % np.uint64(8)) << np.uint64(61))
    monkeypatch.setattr(duplicate_ids, "BUCKET_ROWS", 100)
    batches = [pa.array(ids[i : i + 128]) for i in range(0, len(ids), 128)]
    finder = duplicate_ids.DuplicateFinder(len(ids))
    for b in batches:
        finder.add(b)
    found = finder.finish(lambda: iter(batches))
    index = pd.Index(ids)
    dup = index.duplicated(keep="first")
    assert found.positions.tolist() == np.flatnonzero(dup).tolist()
    assert found.ids == index[dup].unique().tolist()
    keep = found.keep_mask(128, 128)
    assert keep is not None and keep.tolist() == (~dup[128:256]).tolist()


def test_mrdr_is_fitted_per_target_as_in_memory(log):
    path, policies, data = log
    mrdr = MRDRRewardModel(l2=2.0)
    estimators = [DR(reward_model=mrdr), SNDR(reward_model=mrdr, interval="normal"), DR(reward_model=RidgeRewardModel())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate(data, policies, estimators)
        got = evaluate_parquet(path, policies, estimators, batch_rows=1500, cache_bytes=0)
        got_cached = evaluate_parquet(path, policies, estimators, batch_rows=1500)
    assert_tables_equal(got, want)
    assert_tables_equal(got_cached, want)


def test_reward_model_columns_are_read_once_when_they_fit(log, monkeypatch):
    from offline_eval import streaming

    path, policies, data = log
    scans = []
    original = streaming._Log.batches

    def counted(self, columns, batch_rows, retained=False, apart=False):
        scans.append((columns, retained))
        return original(self, columns, batch_rows, retained, apart)

    monkeypatch.setattr(streaming._Log, "batches", counted)
    need = 6000 * (8 * 3 + 4 + 8 + 1)  # rows x (context, action, reward, folds) bytes: 3 features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        kept = evaluate_parquet(path, {"linucb": policies["linucb"]}, [DR()], batch_rows=1000, cache_bytes=need)
        assert len(scans) == 2  # the statistics pass (then the Newton passes from memory) and the evaluation pass
        # ... which takes the contexts and folds from memory too; only the kept pass's batches are retained (scanned)
        assert "context" not in scans[-1][0] and "event_id" not in scans[-1][0]
        assert [retained for _, retained in scans] == [True, False]
        scans.clear()
        read = evaluate_parquet(path, {"linucb": policies["linucb"]}, [DR()], batch_rows=1000, cache_bytes=need - 1)
        assert len(scans) >= 5  # every Newton pass reads the log
        assert "context" in scans[-1][0] and "event_id" in scans[-1][0]
        assert not any(retained for _, retained in scans[1:])  # (the first keeps the base columns, which fit)
    assert_tables_equal(kept, read)


def test_kept_rows_are_found_by_position_across_kept_batches():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    folds = rng.integers(0, 5, 50).astype(np.uint8)
    bounds = [0, 20, 21, 50]
    kept = streaming._KeptRows([X[a:b] for a, b in zip(bounds, bounds[1:])],
                               {(5, 7): [folds[a:b] for a, b in zip(bounds, bounds[1:])]})
    for start, m in [(0, 20), (20, 1), (21, 29), (5, 10), (15, 30), (0, 50), (49, 1)]:
        np.testing.assert_array_equal(kept.context(start, m), X[start:start + m])
        got = kept.fold_rows(start, m)[(5, 7)]
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, folds[start:start + m])
