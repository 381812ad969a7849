"""The `lobsim` command line, run in-process through lobsim.cli.main."""
import re
from pathlib import Path

import pytest

from lobsim.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.parquet"


def test_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("replay", "generate", "convert", "info"):
        assert cmd in out


def test_replay_bundled_sample(capsys):
    assert main(["replay", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "200,000 (L3); applied 200,000, rejected 0" in out
    assert re.search(r"apply: .* [\d,]+ messages/s", out)
    bid = re.search(r"best bid:\s+([\d.]+) x (\d+)", out)
    ask = re.search(r"best ask:\s+([\d.]+) x (\d+)", out)
    assert bid and ask and float(bid.group(1)) < float(ask.group(1))


def test_replay_matches_python_replay(capsys):
    from lobsim.book import OrderBook
    from lobsim.data import read_parquet

    ev = read_parquet(SAMPLE)
    b = OrderBook()
    b.apply(ev.array)
    main(["replay", str(SAMPLE), "--batch-rows", "7777"])
    out = capsys.readouterr().out
    px, qty = b.best_ask()
    assert f"best ask:    {ev.instrument.ticks_to_price(px)} x {qty}" in out
    assert f"resting:     {len(b):,} orders" in out


def test_generate_then_info(tmp_path, capsys):
    out_file = tmp_path / "g.parquet"
    assert main(["generate", "-o", str(out_file), "--events", "5000", "--seed", "9"]) == 0
    assert main(["info", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "events:      5,000" in out and "ADD" in out and "no anomalies" in out


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_text("nope")
    assert main(["replay", str(bad)]) == 1
    assert main(["info", str(tmp_path / "missing.parquet")]) == 1
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "missing.parquet" in err


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AAPL_HEAD = SHARED / "lobster" / "AAPL_10_head"


@pytest.mark.skipif(not AAPL_HEAD.is_dir(), reason="needs the LOBSTER captures in ../shared/data")
def test_convert_lobster_then_info_and_replay(tmp_path, capsys):
    from lobsim.book import OrderBook
    from lobsim.data import read_lobster, read_parquet

    msg = next(AAPL_HEAD.glob("*_message_10.csv"))
    book = next(AAPL_HEAD.glob("*_orderbook_10.csv"))
    out = tmp_path / "aapl.parquet"
    assert main(["convert", "lobster", str(msg), str(book), "-o", str(out)]) == 0
    assert "validation report" in capsys.readouterr().out
    direct = read_lobster(msg, book)
    stored = read_parquet(out)
    assert stored.array.tobytes() == direct.array.tobytes()  # reader -> Parquet -> identical
    assert stored.report.counts == direct.report.counts
    assert main(["replay", str(out)]) == 0
    replay_out = capsys.readouterr().out
    b = OrderBook()
    b.apply(direct.array)
    px, qty = b.best_bid()
    assert f"best bid:    {direct.instrument.ticks_to_price(px)} x {qty}" in replay_out


def test_convert_refuses_bad_arguments(tmp_path, capsys):
    assert main(["convert", "dbn", "a.dbn", "b.dbn", "-o", str(tmp_path / "x.parquet")]) == 1  # many files: each read
    assert "a.dbn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "dbn", "a.dbn", "--tick-size", "0.25", "-o", str(tmp_path / "x.parquet")])
    assert main(["convert", "lobster", str(tmp_path / "missing.zip"), "-o", str(tmp_path / "x.parquet")]) == 1
    assert "missing.zip" in capsys.readouterr().err


def test_bundled_sample_is_what_the_readme_says(tmp_path):
    """data/sample.parquet is `lobsim generate --events 200000 --seed 1` (regenerate it when the generator changes)."""
    from lobsim.data import read_parquet

    out = tmp_path / "s.parquet"
    assert main(["generate", "-o", str(out), "--events", "200000", "--seed", "1"]) == 0
    assert read_parquet(out).array.tobytes() == read_parquet(SAMPLE).array.tobytes()


def test_generate_streams_what_generate_returns(tmp_path, capsys):
    """`lobsim generate` writes synthetic.generate(n, seed) through the streaming writer, in row groups."""
    import pyarrow.parquet as pq

    from lobsim.data import synthetic
    from lobsim.data.store import DEFAULT_ROW_GROUP, file_book_type

    n = DEFAULT_ROW_GROUP + 12_345  # more than one row group and a partial generator chunk
    out = tmp_path / "g.parquet"
    assert main(["generate", "-o", str(out), "--events", str(n), "--seed", "5"]) == 0
    assert f"wrote {n:,} synthetic L3 events (seed 5)" in capsys.readouterr().out
    from lobsim.data import read_parquet

    back = read_parquet(out)
    assert back.array.tobytes() == synthetic.generate(n, 5).tobytes()
    assert back.instrument == synthetic.INSTRUMENT and back.report.info["events"] == n
    assert file_book_type(out) == "L3"
    assert pq.ParquetFile(out).metadata.num_row_groups == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.parquet"]  # no temporary left behind


def test_cli_default_batch_is_the_store_default():
    from lobsim import cli
    from lobsim.data import store

    assert cli.DEFAULT_BATCH == store.DEFAULT_BATCH


def test_ctrl_c_during_generate_exits_130_and_leaves_no_file(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "big.parquet"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    p = subprocess.Popen([sys.executable, "-m", "lobsim", "generate", "-o", str(out), "--events", "1000000000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not list(tmp_path.iterdir()) and time.monotonic() < deadline:  # writing has started
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "lobsim: interrupted\n"
    assert list(tmp_path.iterdir()) == []
