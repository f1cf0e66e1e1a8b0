"""The applied-events ledger drops the ids its watermark covers by popping a time heap (a serving trainer advances
it every second over a window of traffic, so a scan of every id per step grew with the window): against the plain
rule -- keep exactly the ids whose latest time is after the watermark -- for any sequence of adds (ids re-timed,
repeated, unknown times) and advances, through copies and a save/load round trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bandit._ledger import UNKNOWN_US, AppliedEvents

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.tuples(st.sampled_from("abcdefgh"),
                                                     st.one_of(st.integers(0, 60), st.just(UNKNOWN_US))),
                                           max_size=6)),
        st.tuples(st.just("advance"), st.integers(-5, 70)),
        st.tuples(st.just("learn"), st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 60)),
                                             max_size=4)),
        st.tuples(st.just("roundtrip"), st.none()),
    ),
    max_size=40,
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(_ops)
def test_heap_advance_matches_the_plain_rule(ops):
    ledger = AppliedEvents()
    ref: dict[str, int] = {}
    w: int | None = None
    for op, arg in ops:
        if op == "add":
            ledger.add([e for e, _ in arg], [t for _, t in arg])
            for e, t in arg:
                if w is None or t > w:
                    ref[e] = t
        elif op == "advance":
            ledger.advance(arg)
            if w is None or arg > w:
                w = arg
                ref = {e: t for e, t in ref.items() if t > w}
        elif op == "learn":
            ledger.learn_times([e for e, _ in arg], [t for _, t in arg])
            for e, t in arg:
                if ref.get(e) == UNKNOWN_US:
                    ref[e] = t
            if w is not None:
                ref = {e: t for e, t in ref.items() if t > w}
        else:
            meta, arrays = ledger.to_state()
            ledger = AppliedEvents.from_state({"applied_events": meta}, arrays).copy()
        assert dict(ledger.items()) == ref
        assert ledger.watermark_us == w
        assert ledger.has_unknown_times == (UNKNOWN_US in ref.values())
        assert all(ledger.is_settled(e, t) for e, t in ref.items())
