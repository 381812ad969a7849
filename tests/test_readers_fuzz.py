"""Fuzz-review of the data readers (binance, tardis, dbn, parquet store).

Project rule: bad input raises lobsim.DataError naming the file and line/record;
never another exception type, a crash, or silently wrong numbers. The review
found 17 violations (int64 wrap-around of timestamps and ids, exceptions of the
wrong type, floats accepted for prices, undefined DBN prices/timestamps, corrupt
Parquet pages, ...); each has a test here, now passing, beside regression
probes. Small hand-made inputs, deterministic seeds, no shared data needed.
"""
import gzip
import json
import random
from decimal import Decimal

import numpy as np
import pytest

from lobsim import DataError
from lobsim._types import EVENT_DTYPE
from lobsim.data.binance import read_binance, read_binance_book_ticker
from lobsim.data.events import Events
from lobsim.data.store import iter_parquet, read_parquet, write_parquet
from lobsim.data.tardis import _read_binance_depth_csv, read_tardis
from lobsim.instrument import Instrument

MS = 1_000_000
INT64_MAX = 2**63 - 1


# -- Binance capture helpers -----------------------------------------------------------

SNAP = {"lastUpdateId": 10, "E": 1000, "bids": [["100.0", "1.0"]], "asks": [["101.0", "2.0"]]}


def depth(E=1001, U=9, u=11, pu=8, b=(("100.5", "0.5"),), a=()):
    return {"stream": "btcusdt@depth@0ms", "data": {"e": "depthUpdate", "E": E, "T": E, "s": "BTCUSDT", "U": U,
                                                     "u": u, "pu": pu, "b": [list(x) for x in b],
                                                     "a": [list(x) for x in a]}}


def trade(T=1002, p="100.5", q="0.1", m=False):
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "E": T + 1, "T": T, "s": "BTCUSDT", "t": 1,
                                                 "p": p, "q": q, "m": m}}


def ticker(u=1, b="100.0", B="1.0", a="101.0", A="2.0"):
    return {"stream": "btcusdt@bookTicker", "data": {"u": u, "s": "BTCUSDT", "b": b, "B": B, "a": a, "A": A}}


def capture(tmp_path, msgs, name="cap.txt", gz=False):
    """One line per message: '<local ns> <json>'; str / bytes messages are written verbatim."""
    out = []
    for k, m in enumerate(msgs, 1):
        if isinstance(m, bytes):
            out.append(m)
        elif isinstance(m, str):
            out.append(m.encode())
        else:
            out.append(f"{(1000 + k) * MS} {json.dumps(m)}".encode())
    raw = b"\n".join(out) + b"\n"
    p = tmp_path / name
    p.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return p


def raises_data_error(fn, line=None):
    with pytest.raises(DataError) as ei:
        fn()
    if line is not None:
        assert ei.value.line == line, str(ei.value)
    assert ei.value.file is not None
    return ei.value


# -- Binance: passing probes -------------------------------------------------------------


def test_binance_valid_base_and_deterministic(tmp_path):
    p = capture(tmp_path, [SNAP, depth(), trade()])
    a, b = read_binance(p), read_binance(p)
    assert a.array.tobytes() == b.array.tobytes()
    assert a.instrument == b.instrument
    assert list(a.array["price"]) == [0, 1000, 1010, 1005, 1005]


@pytest.mark.parametrize("bad, line", [
    ("1000 {not json", 2),
    ("1000 [1, 2]", 2),
    ("-5 {}", 2),
    ("\ufeff1000 {}", 2),
    ('1000 {"stream":"btcusdt@depth@0ms","data":[1]}', 2),
    (b'1000 {"e":"trade","s":"\xff"}', 2),
    (depth(E=1.5), 2),
    (depth(b=(("100.5", "0.5", "x"),)), 2),
    (depth(b=((100.5, 0.5),)), 2),
    (depth(b=(("100.5", "-0.5"),)), 2),
    (depth(b=(("1e5", "0.5"),)), 2),
    (depth(b=(("NaN", "0.5"),)), 2),
    (trade(p="0"), 2),
    (trade(p=None), 2),
    (trade(m="yes"), 2),
    ({"lastUpdateId": float("nan"), "bids": [], "asks": []}, 2),
])
def test_binance_bad_fields_raise_data_error_with_line(tmp_path, bad, line):
    p = capture(tmp_path, [SNAP, bad])
    raises_data_error(lambda: read_binance(p), line)


def test_binance_truncated_and_corrupt_gzip(tmp_path):
    body = [dict(SNAP, lastUpdateId=k) for k in range(200)]
    raw = capture(tmp_path, body, "full.gz", gz=True).read_bytes()
    for cut in (3, 10, len(raw) // 2, len(raw) - 1):
        p = tmp_path / f"cut{cut}.gz"
        p.write_bytes(raw[:cut])
        raises_data_error(lambda: read_binance(p))
    p = tmp_path / "trail.gz"
    p.write_bytes(raw + b"garbage")
    raises_data_error(lambda: read_binance(p))


def test_binance_random_line_mutations_never_escape(tmp_path):
    """Seeded byte-level mutations of a valid capture: DataError or a valid result, nothing else."""
    base = capture(tmp_path, [SNAP, depth(), trade(), ticker(11)]).read_bytes()
    rng = random.Random(20240808)
    alphabet = b'0123456789.-eE"[]{},: nNaxyz\xff'
    for k in range(150):
        b = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.4:
                b[i] = rng.choice(alphabet)
            elif op < 0.7:
                del b[i]
            else:
                b.insert(i, rng.choice(alphabet))
        p = tmp_path / f"m{k}.txt"
        p.write_bytes(bytes(b))
        for fn in (read_binance, read_binance_book_ticker):
            try:
                fn(p)
            except DataError:
                pass


# -- Binance: bugs -------------------------------------------------------------------------


@pytest.mark.parametrize("msg", [
    depth(E=10**30),
    depth(u=2**64),
    trade(T=10**19),
    f"{10**25} " + json.dumps(SNAP),
], ids=["E", "u", "T", "ts_local"])
def test_binance_int_fields_beyond_int64(tmp_path, msg):
    p = capture(tmp_path, [SNAP, msg])
    raises_data_error(lambda: read_binance(p), 2)


def test_binance_event_time_ms_to_ns_wraps(tmp_path):
    p = capture(tmp_path, [SNAP, depth(E=2**62)])
    raises_data_error(lambda: read_binance(p), 2)


def test_binance_trade_price_json_float_silently_rounded(tmp_path):
    p = capture(tmp_path, ['1001000000 ' + json.dumps(SNAP),
                           '1002000000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1003,"T":1002,'
                           '"s":"BTCUSDT","t":1,"p":100.123456789012345678,"q":"0.1","m":false}}'])
    raises_data_error(lambda: read_binance(p), 2)


def test_binance_trade_price_list(tmp_path):
    p = capture(tmp_path, [SNAP, trade(p=["1", "2"])])
    raises_data_error(lambda: read_binance(p), 2)


def test_binance_deeply_nested_json(tmp_path):
    p = capture(tmp_path, [SNAP, "1000 " + "[" * 100_000 + "]" * 100_000])
    raises_data_error(lambda: read_binance(p), 2)


@pytest.mark.parametrize("price", ["1234567890123456789", "1.0000000000000000001"])
def test_binance_decimal_overflow_names_line(tmp_path, price):
    p = capture(tmp_path, [SNAP, depth(b=((price, "1"),))])
    raises_data_error(lambda: read_binance(p), 2)


@pytest.mark.parametrize("kw", [{"b": "-100.0"}, {"a": "0"}, {"B": "-1.0"}], ids=["neg_px", "zero_px", "neg_qty"])
def test_book_ticker_non_positive_values(tmp_path, kw):
    p = capture(tmp_path, [ticker(**kw)])
    raises_data_error(lambda: read_binance_book_ticker(p), 1)


def test_book_ticker_update_id_beyond_int64(tmp_path):
    p = capture(tmp_path, [ticker(u=2**64)])
    raises_data_error(lambda: read_binance_book_ticker(p), 1)


# -- Tardis CSV ----------------------------------------------------------------------------

L2H = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
L2 = ["deribit,BTC,1000000,1000100,true,ask,6421.5,10",
      "deribit,BTC,1000000,1000100,true,bid,6421,5",
      "deribit,BTC,2000000,2000100,false,bid,6420.5,3"]
TRH = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
BDH = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"


def csv_file(tmp_path, header, rows, name="f.csv", eol="\n"):
    p = tmp_path / name
    p.write_bytes((eol.join([header] + rows) + eol).encode())
    return p


def l2_with(col, value, row=0):
    rows = [r.split(",") for r in L2]
    rows[row][L2H.split(",").index(col)] = value
    return [",".join(r) for r in rows]


def test_tardis_valid_base_crlf_and_deterministic(tmp_path):
    a = read_tardis(csv_file(tmp_path, L2H, L2))
    b = read_tardis(csv_file(tmp_path, L2H, L2, "crlf.csv", eol="\r\n"))
    assert a.array.tobytes() == b.array.tobytes()
    assert a.array.tobytes() == read_tardis(csv_file(tmp_path, L2H, L2)).array.tobytes()
    assert list(a.array["price"]) == [0, 64215, 64210, 64205]


@pytest.mark.parametrize("col, value", [
    ("timestamp", ""), ("timestamp", "1.5"), ("timestamp", "1e5"), ("price", "NaN"), ("price", "inf"),
    ("price", "0"), ("price", "-0"), ("amount", "-1"), ("side", "BID"), ("is_snapshot", "yes"),
])
def test_tardis_bad_values_name_line(tmp_path, col, value):
    p = csv_file(tmp_path, L2H, l2_with(col, value))
    raises_data_error(lambda: read_tardis(p), 2)


@pytest.mark.parametrize("extra, line", [("deribit,BTC,1", 5), ("deribit,BTC,1,1,true,bid,1,1,1", 5)])
def test_tardis_wrong_column_count_names_line(tmp_path, extra, line):
    p = csv_file(tmp_path, L2H, L2 + [extra])
    raises_data_error(lambda: read_tardis(p), line)


def test_tardis_truncated_gzip(tmp_path):
    raw = gzip.compress(("\n".join([L2H] + L2 * 50) + "\n").encode(), mtime=0)
    for cut in (3, 15, len(raw) // 2, len(raw) - 3):
        p = tmp_path / f"c{cut}.csv.gz"
        p.write_bytes(raw[:cut])
        raises_data_error(lambda: read_tardis(p))


@pytest.mark.parametrize("kind", ["l2", "trades", "binance_depth"])
def test_tardis_timestamp_unit_conversion_wraps(tmp_path, kind):
    if kind == "l2":
        p = csv_file(tmp_path, L2H, l2_with("timestamp", "99999999999999999"))
        fn = lambda: read_tardis(p)  # noqa: E731
    elif kind == "trades":
        p = csv_file(tmp_path, TRH, ["bitmex,XBT,99999999999999999,1000,x,buy,100,1"])
        fn = lambda: read_tardis(None, p)  # noqa: E731
    else:
        p = csv_file(tmp_path, BDH, ["BTCUSDT,99999999999999,10,12,a,snap,20472.80,1.000,9"])
        fn = lambda: _read_binance_depth_csv(p)  # noqa: E731
    raises_data_error(fn, 2)


def test_tardis_negative_timestamp(tmp_path):
    p = csv_file(tmp_path, TRH, ["bitmex,XBT,-1000,1000,x,buy,100,1"])
    raises_data_error(lambda: read_tardis(None, p), 2)


def test_tardis_duplicate_column(tmp_path):
    p = csv_file(tmp_path, L2H + ",price", [r + ",7" for r in L2])
    raises_data_error(lambda: read_tardis(p), 1)


@pytest.mark.parametrize("value", ["1_0e0", " 1e2", "\u0661e2"])
def test_tardis_exponent_path_accepts_garbage(tmp_path, value):
    p = csv_file(tmp_path, L2H, l2_with("price", value))
    raises_data_error(lambda: read_tardis(p), 2)


def test_tardis_huge_exponent(tmp_path):
    p = csv_file(tmp_path, L2H, l2_with("price", "1e2000000"))
    raises_data_error(lambda: read_tardis(p), 2)


# -- Parquet store ---------------------------------------------------------------------------


def _events(n=50):
    a = np.zeros(n, EVENT_DTYPE)
    a["ts_exch"] = np.arange(n)
    a["price"], a["qty"], a["side"], a["kind"] = 100, 1, 1, 1
    return Events(a, Instrument("X", Decimal("0.1"), Decimal("1")))


def _custom_parquet(path, meta, mutate=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lobsim.data.store import ARROW_SCHEMA, COLUMNS, METADATA_KEY
    arr = _events().array
    t = pa.table([pa.array(arr[n]) for n in COLUMNS], schema=ARROW_SCHEMA)
    if mutate:
        t = mutate(t)
    t = t.replace_schema_metadata({METADATA_KEY: meta})
    pq.write_table(t, str(path))
    return path


OK_META = {"version": 1, "instrument": {"symbol": "X", "tick_size": "0.1", "lot_size": "1"}, "report": {}}


def test_store_roundtrip_and_truncation(tmp_path):
    p = tmp_path / "e.parquet"
    ev = _events()
    write_parquet(ev, p, row_group_size=10)
    back = read_parquet(p)
    assert back.array.tobytes() == ev.array.tobytes()
    assert np.concatenate(list(iter_parquet(p, 7))).tobytes() == ev.array.tobytes()
    raw = p.read_bytes()
    for cut in (0, 4, 100, len(raw) // 2, len(raw) - 1):
        q = tmp_path / f"t{cut}.parquet"
        q.write_bytes(raw[:cut])
        with pytest.raises(DataError):
            read_parquet(q)


@pytest.mark.parametrize("meta", [b"[]", b"\xff\xfe", json.dumps({**OK_META, "version": 2}).encode(),
                                  json.dumps({**OK_META, "instrument": "x"}).encode(),
                                  json.dumps({**OK_META, "instrument": {"symbol": "X", "tick_size": "-1",
                                                                        "lot_size": "1"}}).encode()])
def test_store_bad_metadata_raises_data_error(tmp_path, meta):
    p = _custom_parquet(tmp_path / "m.parquet", meta)
    with pytest.raises(DataError):
        read_parquet(p)


@pytest.mark.parametrize("report", [None, [1], {"info": 5}])
def test_store_report_metadata_wrong_type(tmp_path, report):
    p = _custom_parquet(tmp_path / "m.parquet", json.dumps({**OK_META, "report": report}).encode())
    with pytest.raises(DataError):
        read_parquet(p)


def test_store_null_value_silently_wrong(tmp_path):
    import pyarrow as pa

    def with_null(t):
        i = t.schema.get_field_index("price")
        return t.set_column(i, "price", pa.array([None] + [100] * 49, pa.int64()))
    p = _custom_parquet(tmp_path / "n.parquet", json.dumps(OK_META).encode(), with_null)
    with pytest.raises(DataError):
        read_parquet(p)


def test_store_duplicate_column(tmp_path):
    import pyarrow as pa
    p = _custom_parquet(tmp_path / "d.parquet", json.dumps(OK_META).encode(),
                        lambda t: t.append_column("price", pa.array(np.full(50, 100, np.int64))))
    with pytest.raises(DataError):
        read_parquet(p)


def test_store_bitflips_never_escape(tmp_path):
    p = tmp_path / "e.parquet"
    write_parquet(_events(), p, row_group_size=10)
    raw = p.read_bytes()
    rng = random.Random(1)
    escaped = []
    for k in range(40):
        b = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        q = tmp_path / f"f{k}.parquet"
        q.write_bytes(bytes(b))
        try:
            read_parquet(q)
            for _ in iter_parquet(q, 7):
                pass
        except DataError:
            pass
        except Exception as e:  # noqa: BLE001 - collecting escapes is the point
            escaped.append(f"{k}: {type(e).__name__}: {str(e)[:60]}")
    assert not escaped, escaped


# -- DBN -----------------------------------------------------------------------------------


def _dbn_file(tmp_path, mutate=None):
    dbn = pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")
    from lobsim.data.dbn import MBO_DTYPE
    ns, ts = 10**9, 1_700_000_000 * 10**9
    act = {"A": dbn.Action.ADD, "C": dbn.Action.CANCEL, "T": dbn.Action.TRADE}
    sd = {"B": dbn.Side.BID, "A": dbn.Side.ASK}
    recs = []
    for k, (a, s, oid, price, size) in enumerate([("A", "B", 1, 100, 5), ("A", "A", 2, 101, 3),
                                                  ("T", "B", 0, 101, 1), ("C", "A", 2, 101, 3)], 1):
        recs.append(dbn.MBOMsg(publisher_id=1, instrument_id=7, ts_event=ts + k * 1000, order_id=oid,
                               price=price * ns, size=size, action=act[a], side=sd[s], ts_recv=ts + k * 1000 + 500,
                               flags=128))
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO, symbols=["TEST"], mappings=[])
    head, body = bytes(meta), b"".join(bytes(r) for r in recs)
    rec = np.frombuffer(body, MBO_DTYPE).copy()
    if mutate:
        mutate(rec)
    p = tmp_path / "m.dbn"
    p.write_bytes(head + rec.tobytes())
    return p


def test_dbn_valid_base_and_deterministic(tmp_path):
    from lobsim.data.dbn import read_dbn
    p = _dbn_file(tmp_path)
    a, b = read_dbn(p), read_dbn(p)
    assert a.array.tobytes() == b.array.tobytes()
    assert list(a.array["price"]) == [100, 101, 101, 101]


@pytest.mark.parametrize("field", ["ts_event", "ts_recv"])
def test_dbn_timestamp_beyond_int64(tmp_path, field):
    from lobsim.data.dbn import read_dbn

    def mutate(rec):
        rec[field][0] = 2**64 - 1
    p = _dbn_file(tmp_path, mutate)
    raises_data_error(lambda: read_dbn(p), 1)


def test_dbn_add_with_undefined_price(tmp_path):
    from lobsim.data.dbn import read_dbn

    def mutate(rec):
        rec["price"][0] = INT64_MAX
    p = _dbn_file(tmp_path, mutate)
    raises_data_error(lambda: read_dbn(p), 1)
