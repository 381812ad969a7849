"""Kraken websocket v1 book reader: hand-built captures (exact events), checksum mismatches counted or
raised, malformed input, and the real capture in shared/data/kraken where every update's CRC32
checksum must equal the one computed on our rebuilt book."""
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from lobsim import DataError, EventKind, Flag
from lobsim.book import depth_series
from lobsim.data import read_kraken
from lobsim.data.kraken import CHECKSUM_MISMATCH

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kraken"
SAMPLE = DATA / "book1000_10pairs_head.ws"
PAIRS = ["WAVES/EUR", "XMR/USD", "KSM/XBT", "GRT/ETH", "SC/EUR", "ETH/CHF", "OCEAN/XBT", "OMG/USD", "XBT/CHF",
         "ADA/XBT"]
SNAP, END = int(Flag.SNAPSHOT), int(Flag.BATCH_END)
S = 1_000_000_000

needs_data = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"real Kraken capture not found at {SAMPLE}")


def crc(asks, bids):
    """Kraken's documented checksum, written independently of the reader: asks ascending, bids descending."""
    def frag(s):
        return s.replace(".", "").lstrip("0")
    s = "".join(frag(p) + frag(q) for p, q in sorted(asks.items(), key=lambda kv: float(kv[0]))[:10])
    s += "".join(frag(p) + frag(q) for p, q in sorted(bids.items(), key=lambda kv: -float(kv[0]))[:10])
    return str(zlib.crc32(s.encode()))


def book_line(t, dicts, pair="XX/YY", channel="book-2"):
    return f"{t}: " + json.dumps([7, *dicts, channel, pair], separators=(",", ":"))


def write(tmp_path, lines, name="cap.ws"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def small_capture(tmp_path, corrupt=False):
    """Depth-2 book: snapshot, an ask that pushes the worst ask out, a delete, and another pair between."""
    asks = {"10.50": "1.00000000", "10.60": "2.00000000"}
    bids = {"10.40": "4.00000000"}
    lines = [
        "wss://ws.kraken.com <-> 1000.0",
        'wss://ws.kraken.com <- 1000.1: {"event":"subscribe","pair":["XX/YY"],"subscription":{"name":"book","depth":2}}',
        '1000.5: {"event":"heartbeat"}',
        book_line("1001.25", [{"as": [["10.50", "1.00000000", "1000.100000"], ["10.60", "2.00000000", "1000.200000"]],
                               "bs": [["10.40", "4.00000000", "1000.300000"]]}]),
        book_line("1001.5", [{"as": [["1.0", "1.0", "1001.0"]]}], pair="ZZ/YY"),  # another pair: skipped
    ]
    asks["10.45"] = "0.50000000"
    del asks["10.60"]  # beyond depth 2 after the update
    lines.append(book_line("1002.000000001", [{"a": [["10.45", "0.50000000", "1001.900000"]],
                                               "c": crc(asks, bids)}]))
    # both sides in one message (two dicts); the bid delete carries an 'r' republish on the ask
    del bids["10.40"]
    bids["10.30"] = "3.00000000"
    asks["10.50"] = "1.50000000"
    c = crc(asks, bids)
    if corrupt:
        c = str((int(c) + 1) % 2**32)
    lines.append(book_line("1003.75", [{"a": [["10.50", "1.50000000", "1000.500000", "r"]]},
                                       {"b": [["10.40", "0.00000000", "1003.100000"],
                                              ["10.30", "3.00000000", "1003.200000"]], "c": c}]))
    return write(tmp_path, lines), asks, bids


def test_small_capture_exact_events(tmp_path):
    path, asks, bids = small_capture(tmp_path)
    ev = read_kraken(path, "XX/YY", tick_size="0.01", lot_size="0.01")
    a = ev.array
    SL, CL = int(EventKind.SET_LEVEL), int(EventKind.CLEAR)
    expect = [  # kind, side, price, qty, flags, ts_local, ts_exch
        (CL, 0, 0, 0, SNAP, 1001_250_000_000, 1000_300_000_000),
        (SL, -1, 1050, 100, SNAP, 1001_250_000_000, 1000_300_000_000),
        (SL, -1, 1060, 200, SNAP, 1001_250_000_000, 1000_300_000_000),
        (SL, 1, 1040, 400, SNAP | END, 1001_250_000_000, 1000_300_000_000),
        (SL, -1, 1045, 50, 0, 1002_000_000_001, 1001_900_000_000),
        (SL, -1, 1060, 0, END, 1002_000_000_001, 1001_900_000_000),  # truncated to depth 2
        (SL, -1, 1050, 150, 0, 1003_750_000_000, 1003_200_000_000),  # republish: its old time is not ts_exch
        (SL, 1, 1040, 0, 0, 1003_750_000_000, 1003_200_000_000),
        (SL, 1, 1030, 300, END, 1003_750_000_000, 1003_200_000_000),
    ]
    got = list(zip(a["kind"].tolist(), a["side"].tolist(), a["price"].tolist(), a["qty"].tolist(),
                   a["flags"].tolist(), a["ts_local"].tolist(), a["ts_exch"].tolist()))
    assert got == expect
    r = ev.report
    assert not r, str(r)
    assert r.info["checksums_checked"] == 2
    assert r.info["levels_truncated"] == 1 and r.info["republished_entries"] == 1
    assert r.info["other_lines_skipped"] == 1 and r.info["capture_metadata_lines"] == 2
    assert r.info["depth"] == 2
    assert str(ev.instrument.tick_size) == "0.01" and ev.instrument.symbol == "XX/YY"
    # replaying the events gives the final book
    ds = depth_series(a, 3, batch_end_only=True)
    assert ds.ask_px[-1].tolist() == [1045, 1050, 0] and ds.ask_qty[-1].tolist() == [50, 150, 0]
    assert ds.bid_px[-1, 0] == 1030 and ds.bid_qty[-1, 0] == 300


def test_instrument_inferred_from_the_strings(tmp_path):
    path, _, _ = small_capture(tmp_path)
    ev = read_kraken(path, "XX/YY")
    assert str(ev.instrument.tick_size.normalize()) == "0.01" and str(ev.instrument.lot_size.normalize()) == "0.1"
    assert ev.array["qty"][1] == 10  # 1.0 in lots of 0.1 (a power of ten: 0.5 is the finest size used)


def test_checksum_mismatch_counted_and_strict_raises(tmp_path):
    path, _, _ = small_capture(tmp_path, corrupt=True)
    ev = read_kraken(path, "XX/YY")
    assert ev.report.counts == {CHECKSUM_MISMATCH: 1}
    assert ev.report.examples[CHECKSUM_MISMATCH][0].startswith(f"{path}:7: our book's checksum")
    with pytest.raises(DataError) as e:
        read_kraken(path, "XX/YY", strict=True)
    assert e.value.line == 7 and str(path) in str(e.value) and CHECKSUM_MISMATCH in str(e.value)


def test_depth_truncation_matters_for_the_checksum(tmp_path):
    # the same capture read as depth 3 keeps 10.60 and its checksum no longer matches Kraken's
    path, _, _ = small_capture(tmp_path)
    text = path.read_text().replace('"book-2"', '"book-3"')
    ev = read_kraken(write(tmp_path, [text.rstrip("\n")], "d3.ws"), "XX/YY")
    assert ev.report.counts[CHECKSUM_MISMATCH] == 2


def test_updates_before_snapshot_and_missing_pair(tmp_path):
    path = write(tmp_path, [book_line("5.0", [{"a": [["1.5", "1.0", "4.0"]]}]),
                            book_line("6.0", [{"as": [["1.5", "2.0", "5.5"]], "bs": []}])])
    ev = read_kraken(path, "XX/YY")
    assert ev.report.counts["no_snapshot"] == 1
    assert ev.array["kind"].tolist() == [EventKind.SET_LEVEL, EventKind.CLEAR, EventKind.SET_LEVEL]
    with pytest.raises(DataError, match="no book message for pair 'AB/CD'"):
        read_kraken(path, "AB/CD")


@pytest.mark.parametrize("line, msg", [
    ("garbage", "malformed line"),
    ("12.5 [1]", "malformed line"),
    ('12.5: [7,{"a":[["1.0","1.0","1.0"]]},"book-10","XX/YY"', "bad JSON"),
    ('12.5: [7,{"a":[["1.0","1.0"]]},"book-10","XX/YY"]', "is not \\[price, volume, timestamp"),
    ('12.5: [7,{"a":[["1e3","1.0","1.0"]]},"book-10","XX/YY"]', "price '1e3' is not a decimal"),
    ('12.5: [7,{"a":[[1.5,"1.0","1.0"]]},"book-10","XX/YY"]', "is not \\[price, volume, timestamp"),
    ('12.5: [7,{"a":[["1.5","-1.0","1.0"]]},"book-10","XX/YY"]', "volume '-1.0' is not a decimal"),
    ('12.5: [7,{"a":[["1.5","1.0","x"]]},"book-10","XX/YY"]', "timestamp 'x'"),
    ('12.5: [7,{"a":[["1.5","1.0","1.0"]],"c":123},"book-10","XX/YY"]', "checksum 123"),
    ('12.5: [7,{"z":[]},"book-10","XX/YY"]', "unknown field 'z'"),
    ('12.5: [7,{"a":[]},"book-x","XX/YY"]', "channel name"),
    ('12.5: [7,"a","book-10","XX/YY"]', "book message is not"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, msg):
    good = book_line("10.0", [{"as": [["1.0", "1.0", "9.0"]], "bs": []}], channel="book-10")
    path = write(tmp_path, ['11.0: {"event":"heartbeat"}', good, line])
    with pytest.raises(DataError, match=msg) as e:
        read_kraken(path, "XX/YY")
    assert e.value.line == 3 and str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_kraken(tmp_path / "nope.ws", "XX/YY")


@needs_data
@pytest.mark.parametrize("pair", PAIRS)
def test_real_capture_every_checksum_matches(pair):
    ev = read_kraken(SAMPLE, pair)
    r = ev.report
    assert r.counts.get(CHECKSUM_MISMATCH, 0) == 0, str(r)
    assert not r, str(r)
    assert r.info["depth"] == 1000 and r.info["subscribed_depth"] == 1000
    # every update of the pair carries a checksum and each was checked
    text = SAMPLE.read_text().splitlines()
    n_updates = sum(1 for t in text if t.endswith(f'"{pair}"]') and '"c":"' in t)
    assert r.info["checksums_checked"] == n_updates
    assert ev.array["kind"][0] == EventKind.CLEAR and np.all(ev.array["kind"][1:] == EventKind.SET_LEVEL)
    assert np.all(np.diff(ev.array["ts_exch"]) >= 0)


@needs_data
def test_real_capture_all_422_checksums():
    assert sum(read_kraken(SAMPLE, p).report.info["checksums_checked"] for p in PAIRS) == 422


@needs_data
def test_real_capture_corrupted_checksum_is_caught(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    i = next(i for i, t in enumerate(lines) if t.endswith('"XBT/CHF"]') and '"c":"' in t)
    head, _, rest = lines[i].partition('"c":"')
    digits, _, tail = rest.partition('"')
    lines[i] = f'{head}"c":"{(int(digits) + 1) % 2**32}"{tail}'
    bad = write(tmp_path, lines)
    assert read_kraken(bad, "XBT/CHF").report.counts[CHECKSUM_MISMATCH] == 1
    with pytest.raises(DataError) as e:
        read_kraken(bad, "XBT/CHF", strict=True)
    assert e.value.line == i + 1


@needs_data
def test_lines_left_to_python_give_the_c_path_events(tmp_path):
    """Book lines the C parser does not take (spaces after separators, an escaped character) are decoded in
    Python and applied to the same C book: the same events, checksums and report as the plain capture."""
    pair = "XBT/CHF"
    ref = read_kraken(SAMPLE, pair)
    lines = SAMPLE.read_text().splitlines()
    out = []
    for i, t in enumerate(lines):
        if t.endswith(f'"{pair}"]') and i % 2:
            head, _, body = t.partition(": ")
            body = json.dumps(json.loads(body))  # ", " and ": " separators
            if i % 4 == 1:
                body = body.replace('"book-', '"\\u0062ook-')
            t = f"{head}: {body}"
        out.append(t)
    ev = read_kraken(write(tmp_path, out), pair)
    assert ev.array.tobytes() == ref.array.tobytes()
    assert ev.report.counts == ref.report.counts and ev.report.info == ref.report.info
