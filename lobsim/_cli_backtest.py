"""`lobsim backtest` and `lobsim demo`: a strategy on an event file, its summary and report.

Every option is parsed and checked before the run (usage errors exit 2, naming
the option or parameter); the report goes to a temporary folder renamed into
place at the end, so a failed run leaves nothing half-written in --out.
"""
import argparse
import inspect
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES = {"as": "AvellanedaStoikov", "glft": "GLFT", "meanrev": "MeanReversion"}
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s)?\s*$")
DEMO_DIR = "lobsim-demo"


def duration_ns(text):
    """'250us', '1ms', '2s', '1.5ms' or plain ns -> int ns (>= 0)."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text[:40]!r} (e.g. 500us, 1ms, 2s)")
    value = float(m.group(1)) * _UNITS[m.group(2) or "ns"]
    if value > 2**62:
        raise argparse.ArgumentTypeError(f"duration {text[:40]} is too long")
    return int(round(value))


def latency_model(text):
    """'none', 'constant:1ms' (both ways), 'constant:1ms,3ms' (entry, response) or
    'lognormal:median=1ms,sigma=0.5[,min=100us][,max=20ms]'."""
    from lobsim.latency import Constant, LogNormal

    kind, _, rest = text.partition(":")
    try:
        if kind == "none" and not rest:
            return None
        if kind == "constant":
            parts = [duration_ns(p) for p in rest.split(",")]
            if len(parts) not in (1, 2):
                raise argparse.ArgumentTypeError("constant takes one or two durations")
            return Constant(*parts)
        if kind == "lognormal":
            fields, bad = {}, []
            for part in rest.split(","):
                key, eq, value = part.partition("=")
                if not eq or key in fields or key not in ("median", "sigma", "min", "max"):
                    bad.append(part[:20])  # no '=', a field given twice, or an unknown field
                else:
                    fields[key] = value
            if bad or "median" not in fields or "sigma" not in fields:
                raise argparse.ArgumentTypeError(
                    "lognormal needs median=<duration>,sigma=<number> and may take min=, max=, each once"
                    + (f" (not understood: {', '.join(map(repr, bad))})" if bad else ""))
            return LogNormal(duration_ns(fields["median"]), float(fields["sigma"]),
                             min_ns=duration_ns(fields.get("min", "0")),
                             max_ns=duration_ns(fields["max"]) if "max" in fields else None)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"latency {text[:60]!r}: {exc}") from None
    raise argparse.ArgumentTypeError(f"latency {text[:60]!r}: expected none, constant:<d>[,<d>] or "
                                     "lognormal:median=<d>,sigma=<x>")


def queue_model(text):
    """'risk', 'power:<n>' or 'log'."""
    from lobsim.queue import LogProb, PowerProb, RiskAverse

    kind, _, rest = text.partition(":")
    try:
        if kind == "risk" and not rest:
            return RiskAverse()
        if kind == "log" and not rest:
            return LogProb()
        if kind == "power":
            return PowerProb(float(rest))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"queue {text[:40]!r}: {exc}") from None
    raise argparse.ArgumentTypeError(f"queue {text[:40]!r}: expected risk, power:<n> or log")


def fees(text):
    """'<maker>,<taker>' rates on traded value, e.g. -0.0001,0.0004."""
    from lobsim import Fees

    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError("expected two rates: maker,taker")
        return Fees(float(parts[0]), float(parts[1]))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"fees {text[:40]!r}: {exc}") from None


def seed(text):
    """An integer 0 .. 2**64 - 1 (the run's random seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text[:40]!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not in 0 .. 2**64 - 1")
    return value


def param(text):
    """'name=value': value as an int, a float, true/false/none, or else a string."""
    name, eq, raw = text.partition("=")
    if not eq or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"not name=value: {text[:40]!r}")
    for conv in (int, float):
        try:
            return name, conv(raw)
        except ValueError:
            pass
    return name, {"true": True, "false": False, "none": None}.get(raw.lower(), raw)


def make_strategy(name, params, parser):
    """The strategy named on the command line with its --param (name, value) pairs, checked before the run."""
    import lobsim.strategies as strategies

    cls = getattr(strategies, STRATEGIES[name])
    names = [key for key, _ in params]
    for key in names:
        if names.count(key) > 1:
            parser.error(f"--param {key}: given {names.count(key)} times")
    params = dict(params)
    accepted = inspect.signature(cls).parameters
    for key in params:
        if key not in accepted:
            parser.error(f"--param {key}: {cls.__name__} has no parameter {key!r} "
                         f"(it takes {', '.join(accepted)})")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        parser.error(f"--param: {cls.__name__}: {exc}")


class ProgressLine:
    """One line on stderr redrawn in place (a carriage return before each text), only on a terminal;
    `close()` ends it with a newline if anything was shown."""

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.active = self.stream is not None and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.shown = False

    def show(self, text):
        self.stream.write(f"\r{text} ")
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


class Progress(ProgressLine):
    """A backtest's progress (data time and events/s), once a run has lasted a second."""

    def __call__(self, events, ts_exch):
        if not self.active:
            return
        elapsed = time.perf_counter() - self.t0
        if elapsed < 1.0:
            return
        import numpy as np

        when = str(np.datetime64(int(ts_exch), "ns"))[:23]
        self.show(f"{when}  {events:,} events  {events / elapsed:,.0f} events/s")


def _out_problem(out, replace):
    """Why `out` cannot receive a report (a message naming it), or None."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a folder: choose another --out"
    if out.exists() and any(out.iterdir()) and not replace:
        return f"{out} exists and is not empty: choose another --out"
    return None


def check_out(out, replace, parser):
    """Refuse an unusable --out before anything runs: a usage error (exit 2) naming --out."""
    problem = _out_problem(out, replace)
    if problem:
        parser.error(f"--out {problem}")


def run_and_report(data, strategy, out, *, replace=False, progress=True, **kw):
    """Run, print the summary, write the report into `out` (created whole or not at all).
    An existing non-empty `out` is refused before the run, unless `replace` (the demo's
    own folder), in which case it is swapped for the new report only once that is complete."""
    from lobsim import Backtest
    from lobsim.metrics._report import umask_modes

    out = Path(out)
    problem = _out_problem(out, replace)
    if problem:
        raise FileExistsError(problem)
    bar = Progress() if progress else None
    try:
        result = Backtest(data, strategy, progress=bar, **kw).run()
    finally:
        if bar is not None:
            bar.close()
    print(result.summary())
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        result.to_parquet(tmp / "results")
        result.plot(tmp / "report.png")
        umask_modes(tmp)
        if out.exists() and replace:
            shutil.rmtree(out)
        elif out.exists():  # empty when checked: rmdir refuses if files appeared during the run
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"report written to {out}/ (report.png, results/: metrics.json, fills, orders, position, markouts)")
    return result


def cmd_backtest(args):
    parser = args.parser
    check_out(args.out, False, parser)
    strategy = make_strategy(args.strategy, args.param or [], parser)
    path = Path(args.data)  # a missing file is a data error (exit 1), after the usage checks
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a file")
    run_and_report(str(path), strategy, args.out, latency=args.latency, queue=args.queue, fees=args.fees,
                   seed=args.seed)
    return 0


def sample_path():
    """The bundled sample (data/sample.parquet beside the package in a source checkout)."""
    return Path(__file__).resolve().parents[1] / "data" / "sample.parquet"


def cmd_demo(args):
    """Avellaneda-Stoikov on the bundled sample, calibrated on it, 1 ms latency each way."""
    from lobsim import Fees
    from lobsim.calibrate import calibrate
    from lobsim.latency import Constant
    from lobsim.strategies import AvellanedaStoikov

    replace = Path(args.out) == Path(DEMO_DIR)  # the demo's own folder (also as ./lobsim-demo/) is replaced
    check_out(args.out, replace, args.parser)
    path = sample_path()
    if path.is_file():
        data = str(path)
        from lobsim.data import read_parquet

        events = read_parquet(path)
    else:  # an installed copy without the source tree: the same events, made in memory
        from lobsim.data import synthetic

        events = data = synthetic.generate_events(200_000, seed=1)
        print("bundled sample not found: generated the same 200,000 events (seed 1) in memory")
    cal = calibrate(events, interval_ns=10_000_000)  # the sample spans 3.7 s: sigma on 10 ms steps
    print(cal)
    strategy = AvellanedaStoikov(gamma=0.01, **cal.params(A=False), interval_ns=10_000_000)
    # a short sample: equity every 10 ms, markouts at 1 ms .. 1 s
    run_and_report(data, strategy, args.out, replace=replace, latency=Constant(1_000_000),
                   fees=Fees(maker=-0.0001, taker=0.0004), seed=7, sample_ns=10_000_000,
                   markouts_ns=(1_000_000, 10_000_000, 100_000_000, 1_000_000_000))
    return 0


def add_parsers(sub):
    b = sub.add_parser("backtest", help="run a strategy on an event file; print the summary, write the report")
    b.add_argument("data", help="lobsim Parquet event file")
    b.add_argument("--strategy", required=True, choices=sorted(STRATEGIES),
                   help="as (Avellaneda-Stoikov), glft (Gueant-Lehalle-Fernandez-Tapia), meanrev (z-score)")
    b.add_argument("--param", action="append", type=param, metavar="NAME=VALUE",
                   help="a strategy parameter, repeatable (e.g. --param gamma=0.1 --param k=1.5)")
    b.add_argument("--latency", type=latency_model, default=None, metavar="MODEL",
                   help="none (default), constant:1ms, constant:1ms,3ms (entry,response), "
                        "lognormal:median=1ms,sigma=0.5[,min=..,max=..]")
    b.add_argument("--queue", type=queue_model, default=None, metavar="MODEL",
                   help="L2 queue model: risk (default), power:<n>, log")
    b.add_argument("--fees", type=fees, default=None, metavar="MAKER,TAKER",
                   help="rates on traded value, e.g. -0.0001,0.0004")
    b.add_argument("--seed", type=seed, default=0, help="random seed of the latency draws, 0 .. 2**64-1")
    b.add_argument("--out", required=True, help="report folder (must not exist, or be empty)")
    b.set_defaults(func=cmd_backtest, parser=b)
    # `--fees -0.0002,0.0003`: argparse (before Python 3.13) takes a value starting with '-' for an
    # option unless it is a plain negative number; no option of this parser looks like a number,
    # so accept any value that starts like one (what Python 3.13's own matcher does)
    b._negative_number_matcher = re.compile(r"-\.?\d")

    d = sub.add_parser("demo", help="Avellaneda-Stoikov on the bundled sample, with its report")
    d.add_argument("--out", default=DEMO_DIR, help=f"report folder (default: {DEMO_DIR})")
    d.set_defaults(func=cmd_demo, parser=d)
