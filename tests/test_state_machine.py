"""Hypothesis state machine: the C OrderBook against the pure-Python ReferenceBook.

Both books get the same add / reduce / delete / execute / modify / submit
(every time in force) / clear operations, valid and invalid alike (unknown
ids, duplicate ids, too-large reductions, zero quantities, bad sides and
tifs). After every step the two must agree exactly: same exception class or
same fills, same depth, best prices, order count and the queue position of
every order. Matching invariants are checked from the book's state before
each submit, independently of either implementation. Prices and ids come from
small ranges so levels and ids collide often. Derandomized, so CI is
reproducible.
"""
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lobsim import EventKind, LobError, TimeInForce, empty_events
from lobsim.book import SubmitOutcome
from lobsim.book.reference import ReferenceBook
from lobsim.errors import Status

OrderBook = pytest.importorskip("lobsim.book", reason="C core not built").OrderBook

IDS = st.integers(min_value=1, max_value=40)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Mostly a narrow band so levels collide; rarely the int64 extremes, where the
# books must refuse (INT64_MIN) or cap (resting total) identically.
PRICES = st.one_of(st.integers(min_value=95, max_value=105),
                   st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX]))
QTYS = st.one_of(st.integers(min_value=1, max_value=8), st.sampled_from([INT64_MAX // 2, INT64_MAX]))
SIDES = st.sampled_from([1, -1])
TIFS = st.sampled_from([int(t) for t in TimeInForce])
ORDERS = st.tuples(IDS, SIDES, PRICES, QTYS)
LEVELS = 16  # > the 11 prices in range, so depth shows every level

GTC, IOC, FOK, POST, MKT = (int(t) for t in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK,
                                               TimeInForce.POST_ONLY, TimeInForce.MARKET))


def call(book, name, *args):
    """('ok', result) or ('err', exception class) for one operation."""
    try:
        return "ok", getattr(book, name)(*args)
    except LobError as exc:
        return "err", type(exc)


def fill_rows(fills):
    names = ("maker_id", "taker_id", "price", "qty", "maker_remaining", "taker_side")
    return [tuple(int(f[k]) for k in names) for f in fills]


class BookPair(RuleBasedStateMachine):
    """Drive both books in lockstep and compare everything observable."""

    @initialize()
    def start(self):
        self.c = OrderBook()
        self.ref = ReferenceBook()
        self.ids_seen = set()

    def teardown(self):
        self.c.close()
        self.ref.close()

    def both(self, name, *args):
        rc = call(self.c, name, *args)
        rr = call(self.ref, name, *args)
        if rr[0] == "err" or rc[0] == "err":
            assert rc == rr, f"{name}{args}: C {rc} vs reference {rr}"
        event(f"{name}: {rr[1].__name__ if rr[0] == 'err' else 'ok'}")
        return rc, rr

    def crossed(self):
        bb, ba = self.ref.best_bid(), self.ref.best_ask()
        return bb is not None and ba is not None and bb[0] >= ba[0]

    # -- operations -------------------------------------------------------------
    @rule(orders=st.lists(ORDERS, min_size=1, max_size=4))
    def add(self, orders):
        for oid, side, price, qty in orders:
            self.ids_seen.add(oid)
            self.both("add", oid, side, price, qty)

    @rule(oid=IDS, qty=QTYS)
    def reduce(self, oid, qty):
        self.both("reduce", oid, qty)

    @rule(oid=IDS)
    def delete(self, oid):
        self.both("delete", oid)

    @rule(oid=IDS, qty=QTYS)
    def execute(self, oid, qty):
        self.both("execute", oid, qty)

    @rule(oid=IDS, price=PRICES, qty=QTYS)
    def modify(self, oid, price, qty):
        self.both("modify", oid, price, qty)

    @rule(data=st.data())
    def touch_live_order(self, data):
        """Operate on an order that surely exists (random ids often miss);
        sometimes with more than it has."""
        live = sorted(i for i in self.ids_seen if i in self.ref)
        if not live:
            return
        oid = data.draw(st.sampled_from(live))
        o = self.ref.order(oid)
        kind = data.draw(st.sampled_from(["reduce", "execute", "delete", "modify", "modify_same_price", "add"]))
        q = data.draw(st.integers(min_value=1, max_value=o.qty + 2))
        if kind == "modify":
            self.both("modify", oid, data.draw(PRICES), q)
        elif kind == "modify_same_price":
            self.both("modify", oid, o.price, q)
        elif kind == "delete":
            self.both("delete", oid)
        elif kind == "add":  # duplicate id
            self.both("add", oid, data.draw(SIDES), data.draw(PRICES), q)
        else:
            self.both(kind, oid, q)

    @rule(data=st.data())
    def invalid_fields(self, data):
        """Operations with a bad field: both books must refuse them alike and change nothing."""
        oid = data.draw(IDS)
        bad_qty = data.draw(st.sampled_from([0, -1, -(2**63)]))
        bad_side = data.draw(st.sampled_from([0, 2, -2]))
        price = data.draw(PRICES)
        ops = [
            ("add", oid, bad_side, price, 1),
            ("add", oid, 1, price, bad_qty),
            ("add", oid, -1, -(2**63), 1),
            ("reduce", oid, bad_qty),
            ("execute", oid, bad_qty),
            ("modify", oid, price, bad_qty),
            ("submit", oid, bad_side, price, 1, GTC),
            ("submit", oid, 1, price, bad_qty, IOC),
            ("submit", oid, -1, price, 1, data.draw(st.sampled_from([-1, 5, 7]))),
        ]
        before = self.ref.totals()
        self.both(*data.draw(st.sampled_from(ops)))
        assert self.ref.totals() == before

    @rule(n=st.integers(min_value=0, max_value=19))
    def clear(self, n):
        if n == 0:  # rarely: it empties the book
            self.both("clear")

    @rule(oid=IDS, side=SIDES, price=PRICES, qty=st.integers(min_value=1, max_value=25), tif=TIFS)
    def submit(self, oid, side, price, qty, tif):
        self.ids_seen.add(oid)
        crossed_before = self.crossed()
        # The resting orders before the submit, by id: (side, price, orders_ahead, qty).
        before = {}
        for i in self.ids_seen:
            if i in self.ref:
                o = self.ref.order(i)
                before[i] = (int(o.side), o.price, o.orders_ahead, o.qty)
        totals_before = self.ref.totals()

        rc, rr = self.both("submit", oid, side, price, qty, tif)
        if rr[0] == "err":
            assert self.ref.totals() == totals_before and self.c.totals() == totals_before
            return
        res_c, res_r = rc[1], rr[1]
        fills = fill_rows(res_r.fills)
        assert fill_rows(res_c.fills) == fills
        assert res_c[:1] + res_c[2:] == res_r[:1] + res_r[2:], "same outcome, qty split and reason"
        if res_r.outcome == SubmitOutcome.REJECTED:
            assert tif == POST and res_r.reason == Status.WOULD_CROSS and not fills
            assert self.ref.totals() == totals_before and oid not in self.c
            return
        assert res_r.filled_qty + res_r.rested_qty + res_r.killed_qty == qty

        # Price-time priority: the makers are, in order, a prefix of the
        # opposite side sorted by price (best first) then queue position.
        opp = [(i, v) for i, v in before.items() if v[0] == -side]
        opp.sort(key=lambda kv: ((kv[1][1] if side == 1 else -kv[1][1]), kv[1][2]))
        assert [f[0] for f in fills] == [i for i, _ in opp[: len(fills)]]
        left = qty
        for k, (maker, taker, px, q, remaining, tside) in enumerate(fills):
            _, mpx, _, mqty = before[maker]
            assert (taker, tside) == (oid, side)
            assert px == mpx, "trade at the resting order's price"
            if tif != MKT:
                assert (px <= price) if side == 1 else (px >= price), "fill worse than the limit"
            assert q == min(mqty, left) and remaining == mqty - q
            if k < len(fills) - 1:
                assert remaining == 0, "only the last maker may be partially filled"
            left -= q
        filled = qty - left
        assert res_r.filled_qty == filled
        assert res_r.outcome == (SubmitOutcome.FILLED if not left else
                                 SubmitOutcome.RESTED if tif in (GTC, POST) else SubmitOutcome.KILLED)
        event(f"submit tif={tif}: {'no fill' if not fills else 'full' if not left else 'partial'}"
              f"{', multi-level' if len({f[2] for f in fills}) > 1 else ''}")
        if tif == POST:
            assert fills == [], "post-only never takes liquidity"
        if tif == FOK:
            assert filled in (0, qty), "FOK fills all or nothing"
        if tif in (IOC, FOK, MKT):
            assert oid not in self.ref and oid not in self.c, "IOC/FOK/market never rests"
        if tif in (GTC, POST) and left:
            info = self.c.order(oid)
            assert (info.price, info.qty) == (price, left)
        else:
            assert oid not in self.c
        if tif != FOK or filled:  # the order could take everything it crossed
            nxt = self.ref.best_ask() if side == 1 else self.ref.best_bid()
            if left and nxt is not None and tif != POST:
                assert (nxt[0] > price if side == 1 else nxt[0] < price) and tif != MKT
        if not crossed_before:
            assert not self.crossed(), "a submit must not leave the book crossed"
        t = self.ref.totals()
        assert t["executed"] - totals_before["executed"] == filled

    # -- invariants after every step ------------------------------------------------
    @invariant()
    def books_agree(self):
        self.c.check()
        self.ref.check()
        assert self.c.best_bid() == self.ref.best_bid()
        assert self.c.best_ask() == self.ref.best_ask()
        assert len(self.c) == len(self.ref)
        dc, dr = self.c.depth(LEVELS), self.ref.depth(LEVELS)
        for a, b in zip(dc, dr):
            assert a.tolist() == b.tolist()
        for i in self.ids_seen:
            assert (i in self.c) == (i in self.ref), i
            if i in self.ref:
                assert tuple(self.c.order(i)) == tuple(self.ref.order(i))
        tc, tr = self.c.totals(), self.ref.totals()
        assert tc == tr
        assert (tc["added"] - tc["resting"] - tc["executed"] - tc["cancelled"]) % 2**64 == 0

    @invariant()
    def fifo_positions_consistent(self):
        """Within each level, queue positions are 0..n-1 and qty_ahead is the running sum."""
        by_level = {}
        for i in self.ids_seen:
            if i in self.ref:
                o = self.c.order(i)
                by_level.setdefault((int(o.side), o.price), []).append(o)
        for (side, px), orders in by_level.items():
            orders.sort(key=lambda o: o.orders_ahead)
            assert [o.orders_ahead for o in orders] == list(range(len(orders)))
            run = 0
            for o in orders:
                assert o.qty_ahead == run
                run += o.qty
            d = self.c.depth(LEVELS)
            px_arr, q_arr = (d.bid_px, d.bid_qty) if side == 1 else (d.ask_px, d.ask_qty)
            assert run == int(q_arr[list(px_arr).index(px)])


BookPair.TestCase.settings = settings(
    max_examples=800,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBookPair = BookPair.TestCase


class DeepBookPair(RuleBasedStateMachine):
    """Deep books against the reference: thousands of levels per side spread
    over narrow or very wide price ranges, far outliers (int64 extremes,
    +-10**15), bulk cancels that empty most of the book (so the C pools shrink
    and compact), CLEAR with many live orders, modifies that move orders
    across the ladder, and sweeps through hundreds of levels. Bulk changes go
    through apply() (one call per book); everything observable is compared
    after every step: full depth, counts, totals, a sample of queue positions."""

    @initialize()
    def start(self):
        self.c = OrderBook()
        self.ref = ReferenceBook()
        self.live = []  # ids added (some may be gone; the books know)
        self.next_id = 1

    def teardown(self):
        self.c.close()
        self.ref.close()

    def apply_both(self, ev):
        rc = self.c.apply(ev, strict=False)
        rr = self.ref.apply(ev, strict=False)
        assert tuple(rc) == tuple(rr)

    @rule(n=st.sampled_from([300, 3000, 8000]), seed=st.integers(0, 2**32 - 1),
          spread=st.sampled_from([20, 2_000, 200_000, 2**40]))
    def bulk_add(self, n, seed, spread):
        rng = random.Random(seed)
        ev = empty_events(n)
        for k in range(n):
            side = rng.choice((1, -1))
            if rng.random() < 0.01:
                price = rng.choice([INT64_MIN + 1, INT64_MAX, -10**15, 10**15])
            else:
                price = (-1 if side == 1 else 1) * rng.randrange(1, spread) + 10**6
            ev[k] = (k, k, self.next_id, price, rng.randrange(1, 9), side, EventKind.ADD, 0, 0)
            self.live.append(self.next_id)
            self.next_id += 1
        self.apply_both(ev)

    @rule(share=st.sampled_from([0.1, 0.5, 0.97, 1.0]), seed=st.integers(0, 2**32 - 1))
    def bulk_remove(self, share, seed):
        rng = random.Random(seed)
        ids = [i for i in self.live if rng.random() < share]
        ev = empty_events(len(ids))
        for k, i in enumerate(ids):
            kind = rng.choice((EventKind.DELETE, EventKind.DELETE, EventKind.EXECUTE, EventKind.REDUCE))
            qty = rng.randrange(1, 9) if kind != EventKind.DELETE else 0
            ev[k] = (k, k, i, 0, qty, 0, kind, 0, 0)  # too-large qtys are refused alike
        self.apply_both(ev)
        self.live = [i for i in self.live if i in self.ref]

    @rule(count=st.integers(min_value=1, max_value=300), seed=st.integers(0, 2**32 - 1),
          spread=st.sampled_from([5, 5_000, 2**45]))
    def bulk_modify(self, count, seed, spread):
        rng = random.Random(seed)
        ids = rng.sample(self.live, min(count, len(self.live)))
        ev = empty_events(len(ids))
        for k, i in enumerate(ids):
            ev[k] = (k, k, i, 10**6 + rng.randrange(-spread, spread), rng.randrange(1, 9), 0,
                     EventKind.MODIFY, 0, 0)
        self.apply_both(ev)

    @rule(side=SIDES, depth=st.sampled_from([1, 10, 1000, 2**41]), qty=st.integers(1, 5000), tif=TIFS,
          oid=st.integers(min_value=10**12, max_value=10**12 + 50))
    def sweep(self, side, depth, qty, tif, oid):
        price = 10**6 + (depth if side == 1 else -depth)
        rc, rr = call(self.c, "submit", oid, side, price, qty, tif), call(self.ref, "submit", oid, side, price, qty, tif)
        assert rc[0] == rr[0]
        if rr[0] == "err":
            assert rc == rr
            return
        assert fill_rows(rc[1].fills) == fill_rows(rr[1].fills)
        assert rc[1][:1] + rc[1][2:] == rr[1][:1] + rr[1][2:]
        if oid in self.ref:
            self.live.append(oid)

    @rule(n=st.integers(min_value=0, max_value=4))
    def clear(self, n):
        if n == 0:
            self.c.clear()
            self.ref.clear()
            self.live = []

    @invariant()
    def books_agree(self):
        self.c.check()
        assert len(self.c) == len(self.ref)
        assert self.c.totals() == self.ref.totals()
        for side in (1, -1):
            assert self.c.level_count(side) == self.ref.level_count(side)
        n = max(self.ref.level_count(1), self.ref.level_count(-1), 1)
        for a, b in zip(self.c.depth(n), self.ref.depth(n)):
            assert np.array_equal(a, b)
        for i in random.Random(len(self.live)).sample(self.live, min(30, len(self.live))):
            assert (i in self.c) == (i in self.ref)
            if i in self.ref:
                assert tuple(self.c.order(i)) == tuple(self.ref.order(i))


DeepBookPair.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDeepBookPair = DeepBookPair.TestCase


EVENT_ROWS = st.lists(
    st.tuples(
        st.sampled_from([1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 10]),  # kinds, ADD weighted, some invalid
        st.integers(min_value=1, max_value=12),  # order_id
        st.sampled_from([1, -1, 1, -1, 0, 2]),  # side
        st.integers(min_value=97, max_value=103),  # price
        st.integers(min_value=-1, max_value=6),  # qty
    ),
    max_size=60,
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(rows=EVENT_ROWS, strict=st.booleans())
def test_apply_agrees_on_arbitrary_event_arrays(rows, strict):
    """apply() of the same (often invalid) event array: same result or exception, same book."""
    ev = empty_events(len(rows))
    for i, (kind, oid, side, price, qty) in enumerate(rows):
        ev[i] = (i, i, oid, price, qty, side, kind, 0, 0)
    with OrderBook() as c, ReferenceBook() as ref:
        out = []
        for book in (c, ref):
            try:
                r = book.apply(ev, strict=strict)
                out.append(("ok", tuple(r)))
            except LobError as exc:
                out.append(("err", type(exc), str(exc).split(":")[1]))  # "apply: event i (...)"
        assert out[0] == out[1]
        c.check()
        ref.check()
        assert c.totals() == ref.totals() and len(c) == len(ref)
        for a, b in zip(c.depth(8), ref.depth(8)):
            assert a.tolist() == b.tolist()
        for i in range(1, 13):
            assert (i in c) == (i in ref)
            if i in ref:
                assert tuple(c.order(i)) == tuple(ref.order(i))
