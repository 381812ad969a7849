"""The `lobsim` command line: replay, generate, convert, info, calibrate.

User errors never print a traceback: bad option values exit 2 with argparse's
usage line, bad or missing files exit 1 with one "lobsim: error: ..." line,
Ctrl-C exits 130.
"""
import argparse
import os
import sys
import time
from collections import Counter
from decimal import Decimal

import numpy as np

from lobsim._cli_backtest import ProgressLine
from lobsim._types import EventKind, Flag
from lobsim.data.events import DEFAULT_CHUNK_ROWS
from lobsim.errors import DataError, LobError
from lobsim.instrument import Instrument, plain

READERS = ("lobster", "dbn", "binance", "tardis", "kraken", "bybit")
MAX_BATCH_ROWS = 100_000_000  # 4.8 GB of events per chunk: beyond that bounded memory means nothing
MAX_EVENTS = 10_000_000_000
MAX_SEED = 2**63 - 1
# A tick or lot size has at most 18 significant digits between 1e-18 and 1e18:
# prices and sizes are int64 multiples of it.
MIN_SIZE, MAX_SIZE, MAX_SIZE_DIGITS = Decimal("1e-18"), Decimal("1e18"), 18


def int_between(lo, hi):
    """argparse type: an integer in [lo, hi] (a usage error, exit 2, otherwise)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text[:40]!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text[:40]} is out of range {lo:,} .. {hi:,}")
        return value

    return parse


def size_decimal(text):
    """argparse type: an exact positive tick or lot size (a usage error, exit 2, otherwise)."""
    try:
        d = Instrument("", text).tick_size  # the same check the library applies
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("tick_size", "size")) from None
    if not MIN_SIZE <= d <= MAX_SIZE or len(d.normalize().as_tuple().digits) > MAX_SIZE_DIGITS:
        raise argparse.ArgumentTypeError(f"size {text[:40]} is outside 1e-18 .. 1e18 or has more than "
                                         f"{MAX_SIZE_DIGITS} significant digits")
    return d


def iso_date(text):
    """argparse type: a YYYY-MM-DD date (a usage error, exit 2, otherwise)."""
    import datetime

    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text[:40]!r}") from None


def _fmt_level(instrument, level):
    if level is None:
        return "-"
    px, qty = level
    return f"{instrument.ticks_to_price(px)} x {instrument.lots_to_qty(qty)}"


def _replay_error(path, offset, exc):
    """DataError for an exception from book.apply on the chunk that starts at event `offset` of `path`,
    naming the event by its index in the file."""
    index = getattr(exc, "event_index", None)
    if index is None:
        return DataError(str(exc), file=path, detail=f"in the chunk of events from {offset}")
    return DataError(f"event {offset + index}: {exc.event_detail}", file=path)


DEFAULT_BATCH = 1 << 16  # lobsim.data.store.DEFAULT_BATCH (kept here so --help does not import pyarrow)


def cmd_replay(args):
    from lobsim.book import LevelBook, OrderBook
    from lobsim.data.store import file_book_type, file_rows, iter_parquet, read_metadata

    instrument, report = read_metadata(args.file)
    n_total = file_rows(args.file)
    kind = file_book_type(args.file)  # from the whole file, not the first chunk
    book = LevelBook() if kind == "L2" else OrderBook()
    applied = rejected = 0
    reasons = Counter()
    first_rejected = -1
    apply_s = 0.0
    offset = 0
    t0 = time.perf_counter()
    with book:
        for chunk in iter_parquet(args.file, args.batch_rows):
            t = time.perf_counter()
            try:
                res = book.apply(chunk, strict=not args.lenient)
            except LobError as exc:
                raise _replay_error(args.file, offset, exc) from None
            apply_s += time.perf_counter() - t
            applied += res.applied
            rejected += res.rejected
            reasons.update(res.by_reason)
            if first_rejected < 0 and res.first_error_index >= 0:
                first_rejected = offset + res.first_error_index
            offset += len(chunk)
        wall = time.perf_counter() - t0
        print(f"file:        {args.file}")
        print(f"instrument:  {instrument.symbol} (tick {plain(instrument.tick_size)}, lot {plain(instrument.lot_size)})")
        print(f"events:      {n_total:,} ({kind}); applied {applied:,}, rejected {rejected:,}")
        if rejected:
            by = ", ".join(f"{name} {n:,}" for name, n in sorted(reasons.items()))
            print(f"rejected:    {by}; the first is event {first_rejected}")
        rate = n_total / apply_s if apply_s > 0 else float("inf")
        print(f"apply:       {apply_s:.4f} s in C = {rate:,.0f} messages/s")
        print(f"wall:        {wall:.4f} s including Parquet reading = {n_total / wall:,.0f} messages/s")
        print(f"best bid:    {_fmt_level(instrument, book.best_bid())}")
        print(f"best ask:    {_fmt_level(instrument, book.best_ask())}")
        if kind == "L3":
            print(f"resting:     {len(book):,} orders")
    if report:
        print(f"reader report: {report.total:,} anomalies (lobsim info {args.file} for details)")
    return 0


def cmd_generate(args):
    from lobsim.data import synthetic
    from lobsim.data.events import ValidationReport
    from lobsim.data.store import EventWriter

    # Streams chunks into row groups: memory does not grow with --events.
    report = ValidationReport(source=f"synthetic(seed={args.seed})", info={"events": args.events})
    t = time.perf_counter()
    with EventWriter(args.output, synthetic.INSTRUMENT, report) as w:
        for chunk in synthetic.iter_generate(args.events, seed=args.seed, chunk_events=DEFAULT_BATCH):
            w.write(chunk)
    secs = time.perf_counter() - t
    print(f"wrote {w.rows:,} synthetic L3 events (seed {args.seed}) to {args.output} "
          f"in {secs:.2f} s ({w.rows / secs:,.0f} events/s)")
    return 0


class ConvertProgress(ProgressLine):
    """`convert`'s progress: input bytes read (of the total on disk), events written, events/s;
    redrawn at most 10 times a second."""

    def __init__(self, total_bytes, stream=None):
        super().__init__(stream)
        self.total = max(int(total_bytes), 1)
        self._last = self.t0

    def __call__(self, bytes_done, events):
        if not self.active:
            return
        now = time.perf_counter()
        if now - self._last < 0.1:
            return
        self._last = now
        rate = events / max(now - self.t0, 1e-9)
        pct = min(100.0, 100.0 * bytes_done / self.total)
        self.show(f"{pct:5.1f}% {bytes_done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB read  "
                  f"{events:,} events written  {rate:,.0f} events/s")


def _expand_inputs(patterns):
    """Input paths in the order given; a pattern with * ? [ that is not itself a file expands to its
    matches sorted by name (for shells that do not expand, and for quoted globs)."""
    import glob

    out = []
    for p in patterns:
        if glob.has_magic(p) and not os.path.exists(p):
            matches = sorted(glob.glob(p))
            if not matches:
                raise DataError("no file matches this pattern", file=p)
            out += matches
        else:
            out.append(p)
    return out


def _convert_jobs(args, inputs):
    """The reads `convert` makes, in order: a list of (paths, open(progress) -> iterator of Events chunks).

    Binance files continue each other (one reader over all); LOBSTER zips, DBN,
    Kraken and Bybit files are independent captures read one after another.
    """
    from lobsim import data

    opts = {"strict": args.strict, "chunk_rows": args.chunk_rows}
    for name in ("tick_size", "lot_size", "symbol"):
        if getattr(args, name) is not None:
            opts[name] = getattr(args, name)
    for name, fmt in (("date", "lobster"), ("definition", "dbn"), ("fills", "dbn"), ("status", "dbn"),
                      ("keep_pre_snapshot", "binance")):
        if getattr(args, name) not in (None, False) and args.format != fmt:
            args.parser.error(f"--{name.replace('_', '-')} is for {fmt} only")

    def job(paths, fn, *a, **kw):
        return list(paths), lambda progress: fn(*a, progress=progress, **kw)


    fmt = args.format
    if fmt == "lobster":
        if args.date is not None:
            opts["date"] = args.date
        if len(inputs) > 1 and all(p.lower().endswith(".zip") for p in inputs):  # vendor zips: a day each
            return [job([p], data.iter_lobster, p, **opts) for p in inputs]
        if len(inputs) > 2:
            args.parser.error("lobster takes vendor zips (one per day), or the message CSV and the orderbook CSV")
        return [job(inputs, data.iter_lobster, *inputs, **opts)]
    if fmt == "dbn":
        if args.lot_size and not args.tick_size:
            args.parser.error("dbn: --lot-size needs --tick-size (and --symbol)")
        if args.definition and (args.tick_size or args.symbol):
            args.parser.error("dbn: --definition gives the symbol and tick: no --symbol/--tick-size with it")
        if args.symbol and not args.tick_size:  # not silently ignored: the tick comes with the symbol
            args.parser.error("dbn: --symbol needs --tick-size (without both, the file's symbol and an "
                              "inferred tick are used)")
        dbn_opts = {"strict": args.strict, "fills": args.fills or "execute", "chunk_rows": args.chunk_rows,
                    "status": args.status}
        if args.tick_size:
            if not args.symbol:
                args.parser.error("dbn: --tick-size needs --symbol")
            dbn_opts["instrument"] = Instrument(args.symbol, args.tick_size, args.lot_size or "1")
        elif args.definition:
            dbn_opts["instrument"] = args.definition  # a DBN definition file: symbol and tick from it
        return [job([p], data.iter_dbn, p, **dbn_opts) for p in inputs]
    if fmt == "binance":
        if args.keep_pre_snapshot:
            opts["keep_pre_snapshot"] = True
        return [job(inputs, data.iter_binance, inputs, **opts)]
    if fmt == "kraken":
        if not args.symbol:
            args.parser.error("kraken: --symbol PAIR is required (e.g. --symbol XBT/EUR): a capture holds several pairs")
        pair = opts.pop("symbol")
        return [job([p], data.iter_kraken, p, pair, **opts) for p in inputs]
    if fmt == "bybit":
        return [job([p], data.iter_bybit, p, **opts) for p in inputs]
    if len(inputs) not in (1, 2):
        args.parser.error("tardis takes an incremental_book_L2 CSV and optionally a trades CSV")
    return [job(inputs, data.iter_tardis, *inputs, **opts)]


def _clear_event(first):
    """A CLEAR at the time of `first` (an event): put between independent captures, so the second
    starts from its own snapshot rather than on top of the first's book."""
    from lobsim._types import EVENT_DTYPE

    ev = np.zeros(1, EVENT_DTYPE)
    ev["ts_exch"], ev["ts_local"], ev["kind"] = first["ts_exch"], first["ts_local"], EventKind.CLEAR
    return ev


def _check_output(path):
    """DataError now, before any input is read, for an output that cannot be written at the end: a
    directory, or a path in a folder that does not exist."""
    if os.path.isdir(path):
        raise DataError("output is a directory; give a file name (e.g. out.parquet)", file=path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError("output folder does not exist", file=folder)


def _start_clock(first):
    """The clock that dates a capture starting with event `first`: ts_exch, except for a snapshot event,
    whose ts_exch is when its order was entered (a DBN MBO snapshot carries each order's original
    ts_event, possibly days old) and whose ts_local is when the snapshot was taken."""
    return "ts_local" if int(first["flags"]) & Flag.SNAPSHOT else "ts_exch"


def cmd_convert(args):
    from lobsim.data.events import ValidationReport
    from lobsim.data.store import EventWriter

    inputs = _expand_inputs(args.inputs)
    jobs = _convert_jobs(args, inputs)
    _check_output(args.output)
    sizes = [sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) for paths, _ in jobs]
    bar = ConvertProgress(sum(sizes))
    report = ValidationReport(source=", ".join(inputs), strict=args.strict)
    writer, last, done_bytes = None, None, 0
    t = time.perf_counter()
    try:
        for (paths, open_chunks), size in zip(jobs, sizes):
            first_of_input = True

            def progress(b, base=done_bytes):
                bar(base + b, writer.rows if writer is not None else 0)

            for ev in open_chunks(progress):
                if writer is None:
                    writer = EventWriter(args.output, ev.instrument, report)
                elif ev.instrument != writer.instrument:
                    raise DataError(f"instrument {ev.instrument} differs from the first input's "
                                    f"{writer.instrument}: give --tick-size/--lot-size/--symbol", file=paths[0])
                report.merge(ev.report)
                a = ev.array
                if first_of_input and len(a):
                    if last is not None:  # the next independent capture: in time order, from a clear book
                        clock = _start_clock(a[0])
                        if a[clock][0] < last[clock]:
                            raise DataError(f"starts at {np.datetime64(int(a[clock][0]), 'ns')}, before the end "
                                            f"of the previous input ({np.datetime64(int(last[clock]), 'ns')}, "
                                            f"{clock}): give the inputs in time order", file=paths[0])
                        if a["kind"][0] != EventKind.CLEAR:
                            writer.write(_clear_event(a[0]))
                    first_of_input = False
                if len(a):
                    last = a[-1].copy()
                writer.write(a)
            done_bytes += size
            bar(done_bytes, writer.rows if writer is not None else 0)
        if writer is None or not writer.rows:  # e.g. only lines of other symbols or streams
            skipped = ", ".join(f"{k} {n:,}" for k, n in sorted(report.counts.items()))
            raise DataError("no events read; nothing written", file=", ".join(map(str, inputs)),
                            detail=f"skipped: {skipped}" if skipped else None)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    secs = time.perf_counter() - t
    print(f"read {writer.rows:,} events in {secs:.2f} s ({writer.rows / max(secs, 1e-9):,.0f} events/s); "
          f"wrote {args.output}")
    print(report)
    return 0


def cmd_info(args):
    from lobsim.data import iter_parquet, read_metadata

    # Streamed: memory holds a chunk and the latency column (8 bytes an event) for the exact median.
    ins, report = read_metadata(args.file)
    n, first, last, counts, lats = 0, None, None, Counter(), []
    for a in iter_parquet(args.file, DEFAULT_BATCH):
        if not len(a):
            continue
        first = int(a["ts_exch"][0]) if first is None else first
        last = int(a["ts_exch"][-1])
        lats.append(a["ts_local"] - a["ts_exch"])
        kinds, k_counts = np.unique(a["kind"], return_counts=True)
        counts.update(dict(zip(kinds.tolist(), k_counts.tolist())))
        n += len(a)
    print(f"file:        {args.file}")
    print(f"instrument:  {ins.symbol} (tick {plain(ins.tick_size)}, lot {plain(ins.lot_size)})")
    print(f"events:      {n:,}")
    if n:
        print(f"span:        {np.datetime64(first, 'ns')} .. {np.datetime64(last, 'ns')} (exchange clock, UTC)")
        lat = np.concatenate(lats)
        print(f"feed latency (ts_local - ts_exch): median {np.median(lat) / 1e3:,.1f} us, "
              f"max {lat.max() / 1e3:,.1f} us")
    for kind in EventKind:
        if counts.get(kind.value):
            print(f"  {kind.name:<10} {counts.pop(kind.value):>12,}")
    for value, k in sorted(counts.items()):  # kinds lobsim does not know: shown, not silently left out
        print(f"  {f'unknown({value})':<10} {k:>12,}")
    print(report)
    return 0


def cmd_calibrate(args):
    from lobsim import calibrate as cal
    from lobsim.data import read_parquet

    ev = read_parquet(args.file)
    ins = ev.instrument
    try:
        top = cal.top_of_book(ev)
        sig = cal.sigma(top, args.interval_ms * 1_000_000)
        fit = cal.intensity(ev, top, min_count=args.min_count)
    except (LobError, ValueError) as exc:  # too little data, or an event the book refuses
        raise DataError(str(exc), file=args.file) from None
    tick = ins.tick_size
    print(f"file:        {args.file}")
    print(f"instrument:  {ins.symbol} (tick {plain(tick)}, lot {plain(ins.lot_size)}); units: ticks, lots, seconds of data time")
    print(f"data:        {len(ev.array):,} events over {top.span_s:,.1f} s")
    print(f"sigma:       {sig.per_second:.6g} ticks/sqrt(s) (= {sig.per_second * float(tick):.6g} per sqrt(s) "
          f"in price) from {sig.n:,} changes of the mid every {args.interval_ms:,} ms")
    print(f"A:           {fit.A:.6g} per s (the fitted intensity at the mid, delta = 0)")
    print(f"k:           {fit.k:.6g} per tick (lambda(delta) = A exp(-k delta), delta in ticks from the mid)")
    print(f"fit:         R^2 {fit.r2:.4f} over {fit.n} depth levels {fit.levels[0]:g} .. {fit.levels[-1]:g} ticks "
          f"(each reached by >= {args.min_count} of {fit.trades:,} trade prints)")
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="lobsim",
        description="Tick-level limit-order-book simulator: replay exchange captures through an exact C book.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("replay", help="replay an event file through the C book; print messages/s and top of book")
    r.add_argument("file", help="lobsim Parquet event file (from `lobsim convert` or `lobsim generate`)")
    r.add_argument("--lenient", action="store_true", help="skip events that cannot be applied instead of failing")
    r.add_argument("--batch-rows", type=int_between(1, MAX_BATCH_ROWS), default=DEFAULT_BATCH,
                   help=f"events read and applied per chunk (1 .. {MAX_BATCH_ROWS:,}; default %(default)s)")
    r.set_defaults(func=cmd_replay)

    g = sub.add_parser("generate", help="write a seeded synthetic L3 event file")
    g.add_argument("-o", "--output", required=True)
    g.add_argument("--events", type=int_between(1, MAX_EVENTS), default=200_000,
                   help=f"number of events (1 .. {MAX_EVENTS:,}; default %(default)s)")
    g.add_argument("--seed", type=int_between(0, MAX_SEED), default=0,
                   help="random seed (0 .. 2**63-1; default %(default)s): same seed, same bytes")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("convert", help="convert vendor captures to a lobsim Parquet event file")
    c.add_argument("format", choices=READERS)
    c.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="input files or quoted globs, in order (binance: files that continue each other; "
                        "lobster zips, dbn, kraken, bybit: independent captures appended in time order)")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--tick-size", type=size_decimal, help="exact tick size, e.g. 0.01 (default: the reader's)")
    c.add_argument("--lot-size", type=size_decimal, help="exact lot size (default: the reader's)")
    c.add_argument("--symbol", help="the symbol to keep (binance, tardis, dbn with --tick-size); kraken: the pair")
    c.add_argument("--strict", action="store_true", help="fail on the first anomaly instead of counting it")
    c.add_argument("--date", type=iso_date, help="lobster: trading date YYYY-MM-DD (default: from the file name)")
    c.add_argument("--definition", metavar="FILE",
                   help="dbn: a DBN definition file giving the symbol and tick size (min_price_increment)")
    c.add_argument("--fills", choices=("execute", "ignore"),
                   help="dbn: what MBO fill (F) records do (default execute; see lobsim.data.dbn)")
    c.add_argument("--status", metavar="FILE",
                   help="dbn: a status-schema DBN file whose trading status (halts) is merged in by exchange time")
    c.add_argument("--keep-pre-snapshot", action="store_true",
                   help="binance: keep depth diffs from before the first snapshot, flagged PRE_SNAPSHOT")
    c.add_argument("--chunk-rows", type=int_between(1, MAX_BATCH_ROWS), default=DEFAULT_CHUNK_ROWS,
                   help="events read and written per chunk: memory is bounded by it, not by the input "
                        "(default %(default)s)")
    c.set_defaults(func=cmd_convert, parser=c)  # cmd_convert reports wrong input counts as usage errors

    i = sub.add_parser("info", help="summarize a stored event file")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)

    k = sub.add_parser("calibrate", help="estimate sigma and the trade intensity A, k of a stored event file")
    k.add_argument("file", help="lobsim Parquet event file")
    k.add_argument("--interval-ms", type=int_between(1, 86_400_000), default=1000,
                   help="sampling period of the mid for sigma, ms of data time (1 .. 86,400,000; default %(default)s)")
    k.add_argument("--min-count", type=int_between(1, MAX_EVENTS), default=10,
                   help="trade prints a depth level needs to enter the fit of A, k (default %(default)s)")
    k.set_defaults(func=cmd_calibrate)

    from lobsim._cli_backtest import add_parsers

    add_parsers(sub)  # backtest, demo
    return p


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints usage + one error line, exits 2
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe fails here, inside the handlers below, not at interpreter exit
        return status
    except KeyboardInterrupt:
        print("lobsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output (e.g. `| head`) stopped: not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush is silent
        return 141  # 128 + SIGPIPE, what a shell reports for a killed pipe writer
    except MemoryError:
        print("lobsim: error: out of memory" + (" (try a smaller --batch-rows)" if args.command == "replay"
                                                  else ""), file=sys.stderr)
        return 1
    except (LobError, OSError, ImportError) as exc:
        print(f"lobsim: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
