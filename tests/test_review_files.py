"""Adversarial review of the streaming file readers (DBN, LOBSTER, Tardis) and `lobsim convert`.

Each test pins a defect the review found (now fixed) or a property the review attacked
(truncations, corrupt bytes, chunk boundaries, convert failures) and that held.
Small synthetic inputs; no shared data needed.
"""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from lobsim import DataError, EventKind, Flag
from lobsim.cli import main
from lobsim.data.events import collect
from lobsim.data.store import read_parquet

dbn = pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")

from test_cli_errors import data_error  # noqa: E402
from test_dbn import LAST, NS, SNAP, Stream  # noqa: E402

from lobsim.data.dbn import iter_dbn, read_dbn  # noqa: E402

T0 = 1_700_000_000 * NS


# --------------------------------------------------------------------------- convert: DBN days in order
def _day(path, start, snapshot_of=()):
    """An MBO capture starting at `start`: a snapshot of `snapshot_of` [(oid, price, ts_event)] (ts_recv =
    start, ts_event = when each order was entered, possibly before the previous capture's end), then live
    records."""
    s = Stream()
    s.ts = start
    for k, (oid, price, ts_event) in enumerate(snapshot_of):
        flags = SNAP | (LAST if k == len(snapshot_of) - 1 else 0)
        s.records.append(dbn.MBOMsg(publisher_id=1, instrument_id=7, ts_event=ts_event, order_id=oid,
                                    price=int(price * NS), size=1, action=dbn.Action.ADD, side=dbn.Side.BID,
                                    ts_recv=start, flags=flags))
    s.mbo("A", "A", 100 + start % 1000, 101, 2).mbo("A", "B", 200 + start % 1000, 99, 3)
    return s.write(path)


def test_convert_dbn_days_whose_snapshot_carries_old_order_times(tmp_path, capsys):
    """Day 2's file opens with a snapshot of orders entered on day 1 (ts_event = their entry time, before
    day 1's last record; ts_recv = the snapshot time). The inputs are in time order: convert must not
    refuse them as out of order."""
    d1 = _day(tmp_path / "d1.dbn", T0)
    d2 = _day(tmp_path / "d2.dbn", T0 + 3600 * NS, snapshot_of=[(200, 99, T0 + 1000)])
    out = tmp_path / "out.parquet"
    assert main(["convert", "dbn", str(d1), str(d2), "-o", str(out), "--symbol", "TEST", "--tick-size", "1"]) == 0
    a = read_parquet(out).array
    one, two = read_dbn(d1, instrument=read_parquet(out).instrument), read_dbn(d2, instrument=read_parquet(out).instrument)
    assert len(a) == len(one.array) + 1 + len(two.array)
    assert a["kind"][len(one.array)] == EventKind.CLEAR
    # and the wrong order is still refused
    err = data_error(capsys, ["convert", "dbn", str(d2), str(d1), "-o", str(tmp_path / "x.parquet"), "--symbol",
                              "TEST", "--tick-size", "1"])
    assert "time order" in err and not (tmp_path / "x.parquet").exists()


# --------------------------------------------------------------------------- Tardis
L2_HEADER = b"exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


def _l2_rows(symbol, n, t0=1585699200245000):
    return b"".join(b"deribit,%s,%d,%d,false,bid,%d.5,10\n" % (symbol, t0 + k, t0 + k + 5, 6400 + k % 7)
                    for k in range(n))


def test_tardis_header_only_without_newline_is_an_empty_file_not_malformed(tmp_path):
    from lobsim.data.tardis import read_tardis

    with_nl, without = tmp_path / "a.csv", tmp_path / "b.csv"
    with_nl.write_bytes(L2_HEADER + b"\n")
    without.write_bytes(L2_HEADER)
    ev = read_tardis(with_nl, tick_size="0.5", lot_size="1")
    ev2 = read_tardis(without, tick_size="0.5", lot_size="1")
    assert len(ev.array) == len(ev2.array) == 0


def test_tardis_second_symbol_in_a_later_block_names_its_line(tmp_path, monkeypatch):
    import lobsim.data.tardis as T

    monkeypatch.setattr(T, "BLOCK_BYTES", 512)
    p = tmp_path / "l2.csv"
    p.write_bytes(L2_HEADER + b"\n" + _l2_rows(b"BTC-PERPETUAL", 40) + _l2_rows(b"ETH-PERPETUAL", 3, 1585699300000000))
    with pytest.raises(DataError, match="several symbols") as e:
        T.read_tardis(p)
    assert e.value.line == 42 and e.value.file is not None


# --------------------------------------------------------------------------- DBN
def test_dbn_record_of_another_schema_mid_file_names_the_record(tmp_path):
    s = Stream()
    for k in range(6):
        s.mbo("A", "B", k + 1, 100, 1)
    s.mbp1("A", "B", 100, 1, (100, 1), None)
    s.mbo("A", "B", 99, 100, 1)
    with pytest.raises(DataError, match="another schema") as e:
        read_dbn(s.write(tmp_path / "x.dbn"))
    assert e.value.line == 7 and "MBP1Msg" in str(e.value) and "unsupported" not in str(e.value)


@pytest.mark.parametrize("kind", ["mbo", "mbp-1", "trades"])
def test_dbn_stream_ending_inside_a_batch_closes_it_and_says_so(tmp_path, kind):
    """Records without F_LAST to the end of the file (a file cut inside an event, or F_LAST never set):
    the last event gets BATCH_END (nothing more can come in that batch) and info counts it; before, no
    BATCH_END at all and nothing in the report (depth_series(batch_end_only) then saw an empty book)."""
    s = Stream(schema={"mbo": dbn.Schema.MBO, "mbp-1": dbn.Schema.MBP_1, "trades": dbn.Schema.MBP_1}[kind])
    for k in range(5):
        if kind == "mbo":
            s.mbo("A", "B", k + 1, 100 + k, 1, flags=0)
        elif kind == "mbp-1":
            s.mbp1("A", "B", 100 + k, 1, (100 + k, 1), None, flags=0)
        else:
            s.mbp1("T", "B", 100 + k, 1, (100, 1), None, flags=0)
    p = s.write(tmp_path / "x.dbn")
    if kind == "trades":  # an MBP-1 file's T records through the trades path: tbbo
        raw = p.read_bytes()
        s.schema = dbn.Schema.TBBO
        p = s.write(tmp_path / "t.dbn")
        assert p.read_bytes() != raw
    ev = read_dbn(p)
    a = ev.array
    assert len(a) and a["flags"][-1] & Flag.BATCH_END
    assert np.count_nonzero(a["flags"] & Flag.BATCH_END) == 1
    assert ev.report.info["batch_open_at_end"] == 1
    for rows in (1, 2, 3):
        ch = collect(iter_dbn(p, chunk_rows=rows))
        assert np.array_equal(ch.array, a) and ch.report.info["batch_open_at_end"] == 1
    # a stream whose last record ends its batch: nothing added, nothing counted
    s.records[-1].flags = LAST
    ev = read_dbn(s.write(tmp_path / "y.dbn"))
    assert "batch_open_at_end" not in ev.report.info


# --------------------------------------------------------------------------- convert: failures
@pytest.mark.parametrize("where", ["directory", "missing folder"])
def test_convert_refuses_an_unwritable_output_before_reading_the_inputs(tmp_path, capsys, monkeypatch, where):
    """An output path that is a directory was only found at the final rename, after the whole conversion."""
    import lobsim.data

    def never(*a, **k):
        raise AssertionError("the input was read although the output cannot be written")

    monkeypatch.setattr(lobsim.data, "iter_lobster", never)
    src = tmp_path / "AAPL_2012-06-21_34200000_57600000_message_1.csv"
    src.write_text("")
    out = tmp_path / "out" if where == "directory" else tmp_path / "no" / "out.parquet"
    if where == "directory":
        out.mkdir()
    err = data_error(capsys, ["convert", "lobster", str(src), "-o", str(out)])
    assert str(out.parent if where != "directory" else out) in err and "AssertionError" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name] + (["out"] if where == "directory" else []))


# --------------------------------------------------------------------------- LOBSTER
def test_lobster_file_without_newlines_fails_at_its_first_overlong_line(tmp_path, monkeypatch):
    """A 'CSV' with no newline (binary junk, a wrong file) was accumulated whole in memory, block after
    block, re-copying the growing line each time (quadratic: a 1 GB file never finished), and only then
    refused. A line longer than a block is no LOBSTER row: DataError at once, naming line 1."""
    import lobsim.data.lobster as L

    monkeypatch.setattr(L, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(L, "MAX_LINE_BYTES", 1 << 16)
    msg = tmp_path / "X_2012-06-21_34200000_57600000_message_1.csv"
    ob = tmp_path / "X_2012-06-21_34200000_57600000_orderbook_1.csv"
    msg.write_bytes(b"34200.1," + b"7" * 200_000)
    ob.write_bytes(b"1000000,1,999900,1\n")
    with pytest.raises(DataError, match="longer than") as e:
        collect(L.iter_lobster(msg))
    assert e.value.line == 1 and "message" in str(e.value.file)
