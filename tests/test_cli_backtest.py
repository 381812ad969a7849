"""`lobsim backtest` and `lobsim demo`: checked before the run, reported whole or not at all.

Bad input (a strategy parameter out of range, an unknown strategy or --param
name, a malformed --param, a latency / queue / fees string that does not parse,
a bad --seed, an unusable --out) is a usage error: exit 2, one "error:" line
naming the option or parameter, before anything runs. A missing or unreadable
data file, or an event the book refuses during the run, is a data error: exit 1,
one "lobsim: error: ..." line. After any failure --out holds nothing and no
temporary folder is left beside it. Progress goes to stderr only on a terminal.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import lobsim
import lobsim._cli_backtest as clib
from lobsim import EVENT_DTYPE, EventKind, Flag
from lobsim.cli import main
from lobsim.data import Events, ValidationReport, read_parquet, write_parquet

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
AS = ["--strategy", "as", "--param", "gamma=0.1", "--param", "k=1", "--param", "sigma=2"]
METRIC_KEYS = ["pnl", "fees", "sharpe", "sortino", "max_drawdown", "calmar", "fills", "maker_volume",
               "taker_volume", "fill_ratio", "spread_captured", "inventory_mean", "inventory_std",
               "inventory_abs_max", "time_at_limit", "quote_presence_bid", "quote_presence_ask",
               "markout_100ms", "markout_1s", "markout_10s", "markout_60s"]  # issue 8's list
TABLES = ["fills.parquet", "markouts.parquet", "orders.parquet", "position.parquet"]


def backtest(out, *args, data=SAMPLE, strategy=AS):
    return ["backtest", str(data), *strategy, *args, "--out", str(out)]


def untouched(out):
    """Nothing in --out (absent or as empty as before) and no temporary folder beside it."""
    assert not out.exists() or not any(out.iterdir()), sorted(os.listdir(out))
    stray = [p for p in os.listdir(out.parent) if p.startswith(".")]
    assert not stray, stray


def usage_error(capsys, argv, out=None):
    """main(argv) must exit 2 with one error line before the run; returns that line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "report written" not in cap.out and "PnL" not in cap.out
    lines = [ln for ln in cap.err.splitlines() if "error:" in ln]
    assert len(lines) == 1, cap.err
    if out is not None:
        untouched(out)
    return lines[0]


def data_error(capsys, argv, out):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("lobsim: error: ") and err.count("\n") == 1, err
    untouched(out)
    return err


# -- usage errors: each names what is wrong, exit 2, before the run ---------------------------------

@pytest.mark.parametrize("params, named", [
    (["gamma=0", "k=1"], "gamma must be > 0"),
    (["gamma=-1", "k=1"], "gamma must be > 0"),
    (["gamma=0.1", "k=0"], "k must be > 0"),
    (["gamma=0.1", "k=-1.5"], "k must be > 0"),
    (["gamma=nan", "k=1"], "gamma must be finite"),
    (["gamma=inf", "k=1"], "gamma must be finite"),
    (["gamma=0.1", "k=1", "sigma=-1"], "sigma must be >= 0"),
    (["gamma=0.1", "k=1", "sigma=abc"], "sigma must be a real number"),
    (["gamma=0.1", "k=1", "max_inventory=1.5"], "max_inventory must be an integer"),
    (["gamma=0.1", "k=1", "order_qty=0"], "order_qty must be >= 1"),
    (["gamma=0.1"], "'k'"),  # a required parameter missing
    ([], "'gamma' and 'k'"),
    (["gamma=0.1", "k=1", "bogus=1"], "--param bogus: AvellanedaStoikov has no parameter 'bogus'"),
    (["gamma=0.1", "k=1", "A=1"], "--param A: AvellanedaStoikov has no parameter 'A'"),
    (["gamma=0.1", "gamma=0.2", "k=1"], "--param gamma: given 2 times"),
])
def test_bad_as_parameters(capsys, tmp_path, params, named):
    out = tmp_path / "out"
    argv = ["backtest", str(SAMPLE), "--strategy", "as", *sum((["--param", p] for p in params), []),
            "--out", str(out)]
    line = usage_error(capsys, argv, out)
    assert named in line and "--param" in line, line


@pytest.mark.parametrize("strategy, params, named", [
    ("glft", ["gamma=0.1", "k=1", "A=0"], "A must be > 0"),
    ("glft", ["gamma=0", "k=1", "A=1"], "gamma must be > 0"),
    ("glft", ["gamma=0.1", "k=0", "A=1"], "k must be > 0"),
    ("glft", ["gamma=0.1", "k=1"], "'A'"),
    ("meanrev", ["lookback=1", "entry_z=2", "exit_z=0.5", "stop_z=4"], "lookback"),
    ("meanrev", ["lookback=10", "entry_z=1", "exit_z=2", "stop_z=4"], "exit_z"),
    ("meanrev", ["lookback=10", "entry_z=2", "exit_z=0.5", "stop_z=4", "gamma=1"], "--param gamma"),
])
def test_bad_glft_and_meanrev_parameters(capsys, tmp_path, strategy, params, named):
    out = tmp_path / "out"
    argv = ["backtest", str(SAMPLE), "--strategy", strategy, *sum((["--param", p] for p in params), []),
            "--out", str(out)]
    assert named in usage_error(capsys, argv, out)


@pytest.mark.parametrize("option, value, named", [
    ("--strategy", "foo", "argument --strategy: invalid choice: 'foo'"),
    ("--param", "gamma", "argument --param: not name=value: 'gamma'"),
    ("--param", "=1", "argument --param: not name=value"),
    ("--param", "1x=2", "argument --param: not name=value"),
    ("--latency", "constant:abc", "argument --latency: not a duration: 'abc'"),
    ("--latency", "constant:", "argument --latency"),
    ("--latency", "constant:1ms,2ms,3ms", "argument --latency: constant takes one or two durations"),
    ("--latency", "constant:-1ms", "argument --latency: not a duration: '-1ms'"),
    ("--latency", "-1ms", "argument --latency"),
    ("--latency", "constant:1e99s", "argument --latency"),
    ("--latency", "lognormal:median=1ms", "argument --latency: lognormal needs median"),
    ("--latency", "lognormal:sigma=0.5", "argument --latency: lognormal needs median"),
    ("--latency", "lognormal:median=1ms,sigma=-1", "argument --latency"),
    ("--latency", "lognormal:median=1ms,sigma=abc", "argument --latency"),
    ("--latency", "lognormal:median=1ms,sigma=nan", "argument --latency"),
    ("--latency", "lognormal:median=1ms,sigma=0.5,junk", "not understood: 'junk'"),
    ("--latency", "lognormal:median=1ms,sigma=0.5,median=2ms", "not understood: 'median=2ms'"),
    ("--latency", "lognormal:median=1ms,sigma=0.5,foo=1", "not understood: 'foo=1'"),
    ("--latency", "lognormal:median=1ms,sigma=0.5,min=5ms,max=1ms", "argument --latency"),
    ("--latency", "foo:1ms", "argument --latency: latency 'foo:1ms': expected none"),
    ("--latency", "none:1ms", "argument --latency"),
    ("--latency", "", "argument --latency"),
    ("--queue", "power:-1", "argument --queue: queue 'power:-1'"),
    ("--queue", "power:0", "argument --queue"),
    ("--queue", "power:x", "argument --queue: queue 'power:x'"),
    ("--queue", "power:nan", "argument --queue"),
    ("--queue", "power:", "argument --queue"),
    ("--queue", "bogus", "argument --queue: queue 'bogus': expected risk, power:<n> or log"),
    ("--queue", "risk:1", "argument --queue"),
    ("--fees", "1", "argument --fees: fees '1': expected two rates"),
    ("--fees", "-0.0002", "argument --fees: fees '-0.0002': expected two rates"),
    ("--fees", "a,b", "argument --fees: fees 'a,b'"),
    ("--fees", "nan,0", "argument --fees: fees 'nan,0': maker must be finite"),  # refused: NaN fees poison the PnL
    ("--fees", "0,inf", "argument --fees: fees '0,inf': taker must be finite"),
    ("--fees", "0,0,0", "argument --fees: fees '0,0,0': expected two rates"),
    ("--seed", "-1", "argument --seed: -1 is not in 0 .. 2**64 - 1"),
    ("--seed", str(2**64), "argument --seed"),
    ("--seed", "x", "argument --seed: not an integer"),
])
def test_bad_option_values(capsys, tmp_path, option, value, named):
    out = tmp_path / "out"
    argv = backtest(out, option, value) if option != "--strategy" else \
        ["backtest", str(SAMPLE), "--strategy", value, "--out", str(out)]
    line = usage_error(capsys, argv, out)
    assert named in line, line


def test_a_non_empty_out_or_a_file_is_refused_before_the_run(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    line = usage_error(capsys, backtest(out))
    assert "--out" in line and "not empty" in line
    assert os.listdir(out) == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = usage_error(capsys, backtest(afile))
    assert "--out" in line and "not a folder" in line and afile.read_text() == "x"


def test_usage_errors_come_before_the_data_is_read(capsys, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the run started")

    monkeypatch.setattr(lobsim, "Backtest", boom)
    usage_error(capsys, backtest(tmp_path / "out", "--latency", "constant:abc", data=tmp_path / "absent.parquet"))
    usage_error(capsys, ["backtest", str(tmp_path / "absent.parquet"), "--strategy", "as", "--param", "gamma=0",
                         "--param", "k=1", "--out", str(tmp_path / "out")])


# -- data errors: exit 1, nothing left behind ------------------------------------------------------

def test_missing_or_unreadable_data_file(capsys, tmp_path):
    out = tmp_path / "out"
    absent = tmp_path / "absent.parquet"
    assert str(absent) in data_error(capsys, backtest(out, data=absent), out)
    assert "not a file" in data_error(capsys, backtest(out, data=tmp_path), out)
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    assert str(junk) in data_error(capsys, backtest(out, data=junk), out)


def test_an_event_the_book_refuses_mid_run_leaves_nothing(capsys, tmp_path):
    ev = read_parquet(SAMPLE)
    arr = ev.array[:50_000].copy()
    bad = arr[40_000].copy()
    bad["kind"], bad["order_id"], bad["flags"] = EventKind.DELETE, 2**60, Flag.BATCH_END  # an unknown id
    arr = np.concatenate([arr[:40_000], [bad], arr[40_000:]]).astype(EVENT_DTYPE)
    path = tmp_path / "data" / "bad.parquet"
    path.parent.mkdir()
    write_parquet(Events(arr, ev.instrument, ValidationReport(source="test")), path)
    out = tmp_path / "out"
    out.mkdir()  # an empty --out is accepted and stays empty after the failure
    err = data_error(capsys, backtest(out, data=path), out)
    assert "event 40000" in err and str(path) in err


def test_a_failure_while_writing_the_report_leaves_nothing(capsys, tmp_path, monkeypatch):
    def broken(self, path, dpi=100):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(lobsim.BacktestResult, "plot", broken)
    out = tmp_path / "deeper" / "out"
    assert main(backtest(out)) == 1
    cap = capsys.readouterr()
    assert "PnL" in cap.out  # the summary was printed, the report could not be written
    assert cap.err.strip() == "lobsim: error: disk full"
    untouched(out)


# -- success ---------------------------------------------------------------------------------------

def test_backtest_writes_the_report_and_prints_the_summary(capsys, tmp_path):
    out = tmp_path / "report"
    assert main(backtest(out, "--latency", "constant:1ms", "--queue", "power:3",
                         "--fees", "-0.0002,0.0003", "--seed", "3")) == 0
    cap = capsys.readouterr()
    assert cap.err == ""  # no progress output: stderr is not a terminal
    for section in ("PnL", "Risk", "Trading", "Inventory", "Quoting", "Markouts", "Run"):
        assert f"\n{section}" in cap.out
    assert f"report written to {out}/" in cap.out
    assert sorted(os.listdir(out)) == ["report.png", "results"]
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and png[-8:-4] == b"IEND"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 400 and height > 400
    assert sorted(os.listdir(out / "results")) == sorted(TABLES + ["metrics.json"])
    meta = json.loads((out / "results" / "metrics.json").read_text())
    missing = [k for k in METRIC_KEYS if k not in meta["metrics"]]
    assert not missing
    assert meta["parameters"]["strategy"] == "AvellanedaStoikov"
    assert meta["parameters"]["strategy_params"]["gamma"] == 0.1
    assert meta["parameters"]["fees"] == {"maker": -0.0002, "taker": 0.0003}
    assert meta["parameters"]["seed"] == 3
    assert meta["metrics"]["fills"] > 0 and meta["metrics"]["fees"] < 0  # post-only: rebates only
    for table in TABLES:
        assert pq.read_table(out / "results" / table).num_rows > 0
    back = lobsim.BacktestResult.from_parquet(out / "results")
    assert len(back.fills) == meta["metrics"]["fills"]
    fills_line = [ln.split() for ln in cap.out.splitlines() if ln.split()[:1] == ["fills"]]
    assert fills_line == [["fills", f"{meta['metrics']['fills']:,}"]]  # the summary is of the same run
    assert sorted(os.listdir(out)) == ["report.png", "results"]  # no temporary folder inside --out
    assert os.listdir(tmp_path) == ["report"]  # nor beside it
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    umask = os.umask(0)
    os.umask(umask)
    assert mode(out) == 0o777 & ~umask and mode(out / "report.png") == 0o666 & ~umask


def test_an_existing_empty_out_is_filled(capsys, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    argv = ["backtest", str(SAMPLE), "--strategy", "glft", "--param", "gamma=0.1", "--param", "k=1",
            "--param", "A=5", "--fees=-0.0001,0.0004", "--latency", "lognormal:median=1ms,sigma=0.5,max=20ms",
            "--out", str(out)]
    assert main(argv) == 0
    assert sorted(os.listdir(out)) == ["report.png", "results"]
    meta = json.loads((out / "results" / "metrics.json").read_text())
    assert meta["parameters"]["strategy"] == "GLFT" and "LogNormal" in meta["parameters"]["latency"]


def test_same_run_same_metrics(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["--latency", "lognormal:median=1ms,sigma=0.5", "--seed", "9"]
    assert main(backtest(a, *argv)) == 0 and main(backtest(b, *argv)) == 0
    ma = json.loads((a / "results" / "metrics.json").read_text())["metrics"]
    mb = json.loads((b / "results" / "metrics.json").read_text())["metrics"]
    assert ma == mb


# -- demo ------------------------------------------------------------------------------------------

def test_demo_replaces_its_own_folder_and_refuses_a_custom_non_empty_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    first = capsys.readouterr()
    assert first.err == "" and "report written to lobsim-demo/" in first.out
    assert sorted(os.listdir("lobsim-demo")) == ["report.png", "results"]
    (tmp_path / "lobsim-demo" / "old.txt").write_text("from an earlier run")
    assert main(["demo"]) == 0  # the default folder is the demo's own: replaced
    second = capsys.readouterr()
    assert second.out == first.out  # deterministic
    assert sorted(os.listdir("lobsim-demo")) == ["report.png", "results"]
    assert main(["demo", "--out", "./lobsim-demo/"]) == 0  # the same folder, spelled differently
    capsys.readouterr()

    custom = tmp_path / "tmp" / "x"
    assert main(["demo", "--out", str(custom)]) == 0
    capsys.readouterr()
    assert sorted(os.listdir(custom)) == ["report.png", "results"]
    before = {p: (custom / "results" / p).read_bytes() for p in os.listdir(custom / "results")}
    line = usage_error(capsys, ["demo", "--out", str(custom)])  # a custom folder is never replaced
    assert "--out" in line and "not empty" in line
    assert {p: (custom / "results" / p).read_bytes() for p in os.listdir(custom / "results")} == before
    assert not [p for p in os.listdir(custom.parent) if p.startswith(".")]


# -- progress --------------------------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal_and_after_a_second(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(clib.time, "perf_counter", lambda: now[0])
    quiet = io.StringIO()
    bar = clib.Progress(quiet)
    now[0] += 5
    bar(1_000_000, 1_700_000_000_000_000_000)
    bar.close()
    assert quiet.getvalue() == ""

    tty = FakeTerminal()
    now[0] = 100.0
    bar = clib.Progress(tty)
    now[0] += 0.5
    bar(10, 1_700_000_000_000_000_000)
    assert tty.getvalue() == ""  # runs shorter than a second show nothing
    now[0] += 1.5
    bar(4_000_000, 1_700_000_000_000_000_000)
    bar.close()
    text = tty.getvalue()
    assert text.startswith("\r2023-11-14T22:13:20.000") and "4,000,000 events" in text
    assert "2,000,000 events/s" in text and text.endswith("\n")


def test_progress_follows_the_current_stderr(monkeypatch):
    tty = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", tty)
    assert clib.Progress().stream is tty and clib.Progress().active
    monkeypatch.setattr(sys, "stderr", None)  # e.g. pythonw: no stderr at all
    assert not clib.Progress().active


# -- the real command in a subprocess --------------------------------------------------------------

def run_lobsim(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lobsim", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)


def test_subprocess_success_and_failures_never_show_a_traceback(tmp_path):
    out = tmp_path / "r"
    p = run_lobsim("backtest", str(SAMPLE), *AS, "--fees", "-0.0002,0.0003", "--latency", "constant:100us",
                   "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # stderr is a pipe: no progress output
    assert "markout_100ms" in p.stdout and (out / "report.png").is_file()
    cases = [  # (strategy arguments, exit status, named in the error)
        (["--strategy", "as", "--param", "gamma=0", "--param", "k=1"], "gamma must be > 0"),
        (["--strategy", "as", "--param", "gamma=0.1", "--param", "k=0"], "k must be > 0"),
        (["--strategy", "xx"], "argument --strategy"),
        (AS + ["--param", "nope=1"], "--param nope"),
        (AS + ["--param", "gamma"], "argument --param"),
        (AS + ["--latency", "constant:abc"], "argument --latency"),
        (AS + ["--latency", "lognormal:median=1ms"], "argument --latency"),
        (AS + ["--queue", "power:-1"], "argument --queue"),
        (AS + ["--fees", "nan,0"], "argument --fees"),
        (AS + ["--seed", "-5"], "argument --seed"),
    ]
    for args, named in cases:
        p = run_lobsim("backtest", str(SAMPLE), *args, "--out", str(tmp_path / "never"), cwd=tmp_path)
        assert p.returncode == 2 and "Traceback" not in p.stderr and named in p.stderr, (args, p.stderr)
        assert p.stdout == ""
    p = run_lobsim("backtest", str(SAMPLE), *AS, "--out", str(out), cwd=tmp_path)  # out is now non-empty
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--out" in p.stderr
    p = run_lobsim("backtest", str(tmp_path / "absent.parquet"), *AS, "--out", str(tmp_path / "never"),
                   cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr == f"lobsim: error: {tmp_path / 'absent.parquet'}: not a file\n"
    assert not (tmp_path / "never").exists()
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_subprocess_demo(tmp_path):
    p = run_lobsim("demo", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "sigma =" in p.stdout and "report written to lobsim-demo/" in p.stdout
    assert sorted(os.listdir(tmp_path / "lobsim-demo")) == ["report.png", "results"]


def test_files_put_into_out_during_the_run_are_not_deleted(capsys, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()  # empty when checked: accepted
    plot = lobsim.BacktestResult.plot

    def plot_and_meddle(self, path, dpi=100):
        (out / "theirs.txt").write_text("written while the report was being made")
        return plot(self, path, dpi=dpi)

    monkeypatch.setattr(lobsim.BacktestResult, "plot", plot_and_meddle)
    assert main(backtest(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("lobsim: error: ") and "not empty" in err and err.count("\n") == 1
    assert os.listdir(out) == ["theirs.txt"]
    assert os.listdir(tmp_path) == ["out"]
