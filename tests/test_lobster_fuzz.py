"""Fuzz and property tests of the LOBSTER reader (lobsim.data.lobster + csrc/lobster.c).

* Consistent random files (a full book with depth beyond the vendor's top N,
  messages only where they touch the visible window, as LOBSTER writes them):
  the replayed book after every message equals the vendor's row.
* Mutated files (bad fields, huge numbers, reused / unknown ids, rows moved,
  dropped or duplicated, broken CSV, zips) read in a child process: each
  read must end in Events or DataError -- never a crash, hang or other
  exception -- and two reads of the same input give identical bytes.
* Regression probes for specific finds of a fuzzing review (all fixed).

Deterministic seeds throughout; runs in a few seconds.
"""
import random
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from lobsim import DataError
from lobsim.book import depth_series
from lobsim.data import read_lobster

STEM = "TEST_2012-06-21_34200000_57600000"
EMPTY_ASK, EMPTY_BID = 9999999999, -9999999999


# --------------------------------------------------------------------------- generator
def _levels(book, side):
    agg = {}
    for s, p, q in book.values():
        if s == side:
            agg[p] = agg.get(p, 0) + q
    return sorted(agg.items(), key=lambda x: -x[0] if side == 1 else x[0])


def _row(book, N):
    bids, asks = _levels(book, 1)[:N], _levels(book, -1)[:N]
    out = []
    for j in range(N):
        ap, aq = asks[j] if j < len(asks) else (EMPTY_ASK, 0)
        bp, bq = bids[j] if j < len(bids) else (EMPTY_BID, 0)
        out += [ap, aq, bp, bq]
    return out


def gen(seed, N=None, steps=None, tick=100, base=1_000_000):
    """A consistent LOBSTER pair -> (N, messages [ns, type, id, size, price, dir], orderbook rows)."""
    rng = random.Random(seed)
    N = N or rng.randint(1, 10)
    steps = steps or rng.randint(1, 60)
    book, nid = {}, 1  # id -> [side, price, qty]
    for _ in range(rng.randint(0, 4 * N + 4)):  # orders resting before the file starts
        side, k = rng.choice((1, -1)), rng.randint(0, 2 * N + 2)
        book[nid] = [side, base - (k + 1) * tick if side == 1 else base + k * tick, rng.randint(1, 50)]
        nid += 1
    msgs, rows, t = [], [], 34200 * 10**9
    while len(msgs) < steps:
        t += rng.choice((0, 1, 1000, 10**6))
        r = rng.random()
        bb, ba = _levels(book, 1), _levels(book, -1)
        best_bid, best_ask = (bb[0][0] if bb else None), (ba[0][0] if ba else None)
        before = {s: {p for p, _ in _levels(book, s)[:N]} for s in (1, -1)}
        touched = None
        if r < 0.4 or not book:
            side = rng.choice((1, -1))
            if side == 1:
                p = (best_ask if best_ask is not None else base) - rng.randint(1, 2 * N + 3) * tick
            else:
                p = (best_bid if best_bid is not None else base - tick) + rng.randint(1, 2 * N + 3) * tick
            if p <= 0:
                continue
            q = rng.randint(1, 50)
            book[nid] = [side, p, q]
            msg, touched = [t, 1, nid, q, p, side], (side, p)
            nid += 1
        elif r < 0.85:
            oid = rng.choice(list(book))
            kind = rng.choice((2, 3, 4))
            if kind == 4:  # executions hit the best level
                side = book[oid][0]
                best = best_bid if side == 1 else best_ask
                oid = rng.choice([o for o, v in book.items() if v[0] == side and v[1] == best])
            side, p, q = book[oid]
            if kind == 2 and q < 2:
                continue
            d = rng.randint(1, q) if kind == 4 else rng.randint(1, q - 1) if kind == 2 else q
            book[oid][2] -= d
            if book[oid][2] == 0:
                del book[oid]
            msg, touched = [t, kind, oid, d, p, side], (side, p)
        elif r < 0.95:  # hidden execution, sometimes between ticks (skipped)
            p = base + rng.randint(-N, N) * tick + rng.choice((0, 0, 0, tick // 2))
            msg = [t, 5, 0, rng.randint(1, 30), p, rng.choice((1, -1))]
        elif r < 0.98:
            msg = [t, 6, rng.randint(0, 5), rng.randint(1, 1000), base + rng.randint(-2, 2) * tick, 1]
        else:
            msg = [t, 7, 0, 0, rng.choice((-1, 0, 1)), -1]
        if touched is not None:
            side, p = touched
            if p not in before[side] and p not in {x for x, _ in _levels(book, side)[:N]}:
                continue  # outside the vendor's window: LOBSTER has no message for it
        msgs.append(msg)
        rows.append(_row(book, N))
    return N, msgs, rows


def lines(msgs, rows):
    ml = [f"{m[0] // 10**9}.{m[0] % 10**9:09d},{m[1]},{m[2]},{m[3]},{m[4]},{m[5]}" for m in msgs]
    return ml, [",".join(map(str, r)) for r in rows]


def write_pair(d, ml, ol, levels, stem=STEM):
    m, o = d / f"{stem}_message_{levels}.csv", d / f"{stem}_orderbook_{levels}.csv"
    m.write_text("".join(x + "\n" for x in ml))
    o.write_text("".join(x + "\n" for x in ol))
    return m


# --------------------------------------------------------------------------- semantics
def test_consistent_random_files_replay_to_the_vendor_book(tmp_path):
    checked = 0
    for seed in range(250):
        N, msgs, rows = gen(seed)
        path = write_pair(tmp_path, *lines(msgs, rows), N)
        ev = read_lobster(path)
        again = read_lobster(path)
        assert ev.array.tobytes() == again.array.tobytes(), f"seed {seed}: not deterministic"
        d = depth_series(ev.array, N, batch_end_only=True)
        keep = [i for i, m in enumerate(msgs) if not (m[1] in (5, 6) and m[4] % 100)]  # skipped prints
        assert d.bid_px.shape[0] == 1 + len(keep), f"seed {seed}: one batch per message after the seed"
        want = np.array(rows, dtype=np.int64)[keep].reshape(len(keep), N, 4)
        ap, aq, bp, bq = (want[:, :, c] for c in range(4))
        got = (d.ask_px[1:], d.ask_qty[1:], d.bid_px[1:], d.bid_qty[1:])
        exp = (np.where(aq > 0, ap // 100, 0), aq, np.where(bq > 0, bp // 100, 0), bq)
        for name, g, e in zip(("ask_px", "ask_qty", "bid_px", "bid_qty"), got, exp):
            bad = np.argwhere(g != e)
            assert not len(bad), f"seed {seed} N {N}: {name} row {keep[bad[0][0]] + 1} level {bad[0][1] + 1}"
        checked += len(keep)
    assert checked > 5000


# --------------------------------------------------------------------------- crash probe (child process)
_CHILD = textwrap.dedent(r"""
    import random, sys, tempfile, pathlib, zipfile
    sys.path.insert(0, sys.argv[1])
    import test_lobster_fuzz as F
    from lobsim import DataError
    from lobsim.data.events import Events
    from lobsim.data import read_lobster

    BIG = [0, -1, 1, 2**61 - 1, 2**61, 2**62, 2**63 - 1, -2**63, 9999999999, -9999999999, 4611686018427387904]

    def val(rng):
        return rng.choice(BIG) if rng.random() < 0.6 else rng.randint(-100, 2_000_000)

    def mutate(seed):
        rng = random.Random(seed)
        N, msgs, rows = F.gen(seed * 7919 + 1, N=rng.choice([None, 1, 2, 10]), steps=rng.randint(1, 25))
        opts, name_N = {}, N
        for _ in range(rng.choice([0, 1, 2, 3, 6])):
            i, r = rng.randrange(len(msgs)), rng.random()
            if r < 0.3:
                f = rng.randrange(1, 6)
                msgs[i][f] = (rng.choice([0, 8, 1, 2, 3, 4, 5, 6, 7]) if f == 1 else
                              rng.choice([0, 2, 1, -1]) if f == 5 else
                              msgs[rng.randrange(len(msgs))][2] if f == 2 and rng.random() < 0.5 else val(rng))
            elif r < 0.4:
                msgs[i][0] = rng.choice([0, msgs[0][0], msgs[i][0] - 10**9, 10**15])
            elif r < 0.65 and i < len(rows):
                j = rng.randrange(len(rows[i]))
                rows[i][j] = val(rng) if rng.random() < 0.4 else rows[i][j] + rng.choice([-1, 1, -100, 100, 50])
            elif r < 0.7 and i < len(rows):
                a = rng.randrange(len(rows))
                rows[i], rows[a] = rows[a], rows[i]
            elif r < 0.78 and len(msgs) > 1:
                del msgs[i]
                if rng.random() < 0.7 and i < len(rows):
                    del rows[i]
            elif r < 0.86:
                msgs.insert(i, list(msgs[i]))
                if rng.random() < 0.7 and i < len(rows):
                    rows.insert(i, list(rows[i]))
            elif r < 0.92 and i < len(rows):
                j = rng.randrange(N)
                rows[i][4 * j + rng.choice((0, 2))] = rng.choice([EMPTY for EMPTY in (F.EMPTY_ASK, F.EMPTY_BID, 0)])
                rows[i][4 * j + rng.choice((1, 3))] = 0
            elif r < 0.96:
                name_N = rng.choice([0, N + 1, 11])
            else:
                opts = rng.choice([{"tick_size": "0.0001"}, {"lot_size": "100"}, {"strict": True},
                                   {"tick_size": "0.0002"}, {"tick_size": "1"}])
        ml, ol = F.lines(msgs, rows)
        return ml, ol, name_N, opts, rng.random() < 0.1

    d = pathlib.Path(tempfile.mkdtemp())
    for seed in range(int(sys.argv[2]), int(sys.argv[3])):
        print("case", seed, flush=True)
        ml, ol, name_N, opts, as_zip = mutate(seed)
        for f in d.iterdir():
            f.unlink()
        path = F.write_pair(d, ml, ol, name_N)
        if as_zip:
            z = d / "pair.zip"
            with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(d.glob("*.csv")):
                    zf.write(f, f.name)
            path = z
        outcomes = []
        for _ in range(2):
            try:
                ev = read_lobster(path, **opts)
                assert isinstance(ev, Events)
                outcomes.append(ev.array.tobytes())
            except DataError as e:
                outcomes.append(str(e))
        assert outcomes[0] == outcomes[1], f"seed {seed}: two reads differ"
    print("done", flush=True)
""")


def test_mutated_files_end_in_events_or_data_error(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    here = str(__import__("pathlib").Path(__file__).resolve().parent)
    p = subprocess.run([sys.executable, str(script), here, "0", "120"], capture_output=True, text=True, timeout=120)
    last = [ln for ln in p.stdout.splitlines() if ln.startswith("case")][-1:]
    assert p.returncode == 0 and p.stdout.rstrip().endswith("done"), (
        f"child died (rc {p.returncode}) at {last}:\n{p.stderr[-3000:]}")


# --------------------------------------------------------------------------- regression probes
def _read(tmp_path, msgs, books, levels=1, stem=STEM, **kw):
    return read_lobster(write_pair(tmp_path, msgs, books, levels, stem), **kw)


# fixed bug: a level total overflowing int64 was LOB_ERR_BAD_QTY with no row
def test_level_total_overflow_names_the_line(tmp_path):
    with pytest.raises(DataError) as e:  # message 1 undone: row 1 shows 1, plus 2^63 - 1 executed
        _read(tmp_path, ["34200,4,1,9223372036854775807,1000000,1"], ["1010000,5,1000000,1"])
    assert e.value.line == 1


# fixed bug: two adds whose sum overflows: DataError names no line
def test_level_total_overflow_on_second_add_names_the_line(tmp_path):
    big = 1 << 62
    with pytest.raises(DataError) as e:
        _read(tmp_path, [f"34200,1,1,{big},1000000,1", f"34200,1,2,{big},1000000,1"],
              [f"1010000,5,1000000,{big}", f"1010000,5,1000000,{big}"])
    assert e.value.line == 2


# fixed bug: a field outside int64 falls through _diagnose: 'unreadable CSV', no line
@pytest.mark.parametrize("which", ["message", "orderbook"])
def test_field_outside_int64_names_the_line(tmp_path, which):
    msgs = ["34200,1,1,10,1000000,1", "34201,1,2,10,1000000,1"]
    books = ["1010000,5,1000000,10", "1010000,5,1000000,20"]
    if which == "message":
        msgs[1] = "34201,1,9223372036854775808,10,1000000,1"
    else:
        books[1] = "1010000,5,1000000,18446744073709551616"
    with pytest.raises(DataError) as e:
        _read(tmp_path, msgs, books)
    assert e.value.line == 2


# fixed bug: a fractional lot_size multiplies sizes in numpy and wraps silently
def test_fractional_lot_size_does_not_wrap_sizes(tmp_path):
    big = (1 << 62) + 1  # * 4 wraps to 4
    try:
        ev = _read(tmp_path, [f"34200,1,1,{big},1000000,1"], [f"1010000,5,1000000,{big}"], lot_size="0.25")
    except DataError:
        return
    assert ev.array["qty"][-1] == 4 * big  # unreachable in int64: must have raised


# fixed bug: a tick finer than 0.0001 multiplies prices and wraps silently
def test_fine_tick_does_not_wrap_prices(tmp_path):
    p = (1 << 61) - 1
    try:
        ev = _read(tmp_path, [f"34200,1,1,10,{p},1"], [f"9999999999,0,{p},10"], tick_size="0.00000001")
    except DataError:
        return
    assert ev.array["price"][-1] > 0


# fixed bug: dates outside the int64-ns range raise OverflowError, not DataError
@pytest.mark.parametrize("date,time", [("0001-01-01", "34200"), ("2300-01-01", "34200"), ("9999-12-31", "86400")])
def test_out_of_range_date_is_a_data_error(tmp_path, date, time):
    with pytest.raises(DataError):
        _read(tmp_path, [f"{time},1,1,10,1000000,1"], ["9999999999,0,1000000,10"], stem=f"X_{date}_1_2")


# fixed bug: a timestamp past 2262-04-11 23:47 UTC wraps to a negative int64
def test_timestamp_past_int64_ns_does_not_wrap(tmp_path):
    try:
        ev = _read(tmp_path, ["86000,1,1,10,1000000,1"], ["9999999999,0,1000000,10"], stem="X_2262-04-11_1_2")
    except DataError:
        return
    assert (ev.array["ts_exch"] > 0).all()


def test_zip_pair_reads_like_the_csv_pair(tmp_path):
    N, msgs, rows = gen(7, N=3)
    path = write_pair(tmp_path, *lines(msgs, rows), N)
    z = tmp_path / "pair.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(tmp_path.glob("*.csv")):
            zf.write(f, f.name)
    assert read_lobster(z).array.tobytes() == read_lobster(path).array.tobytes()
