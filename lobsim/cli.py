"""The `lobsim` command line: replay, generate, convert, info."""
import argparse
import sys
import time
from collections import Counter

import numpy as np

from lobsim._types import EventKind
from lobsim.errors import LobError
from lobsim.instrument import Instrument

READERS = ("lobster", "dbn", "binance", "tardis")


def _fmt_level(instrument, level):
    if level is None:
        return "-"
    px, qty = level
    return f"{instrument.ticks_to_price(px)} x {instrument.lots_to_qty(qty)}"


def cmd_replay(args):
    from lobsim.book import LevelBook, OrderBook
    from lobsim.book._book import book_type_for
    from lobsim.data.store import file_rows, iter_parquet, read_metadata

    instrument, report = read_metadata(args.file)
    n_total = file_rows(args.file)
    book = None
    applied = rejected = 0
    apply_s = 0.0
    t0 = time.perf_counter()
    for chunk in iter_parquet(args.file, args.batch_rows):
        if book is None:  # the first chunk decides L2 or L3
            book = book_type_for(chunk)()
        t = time.perf_counter()
        res = book.apply(chunk, strict=not args.lenient)
        apply_s += time.perf_counter() - t
        applied += res.applied
        rejected += res.rejected
    wall = time.perf_counter() - t0
    book = book or OrderBook()
    kind = "L2" if isinstance(book, LevelBook) else "L3"
    print(f"file:        {args.file}")
    print(f"instrument:  {instrument.symbol} (tick {instrument.tick_size}, lot {instrument.lot_size})")
    print(f"events:      {n_total:,} ({kind}); applied {applied:,}, rejected {rejected:,}")
    rate = n_total / apply_s if apply_s > 0 else float("inf")
    print(f"apply:       {apply_s:.4f} s in C = {rate:,.0f} messages/s")
    print(f"wall:        {wall:.4f} s including Parquet reading = {n_total / wall:,.0f} messages/s")
    print(f"best bid:    {_fmt_level(instrument, book.best_bid())}")
    print(f"best ask:    {_fmt_level(instrument, book.best_ask())}")
    if kind == "L3":
        print(f"resting:     {len(book):,} orders")
    if report:
        print(f"reader report: {report.total:,} anomalies (lobsim info {args.file} for details)")
    book.close()
    return 0


def cmd_generate(args):
    from lobsim.data import synthetic, write_parquet

    events = synthetic.generate_events(args.events, seed=args.seed)
    write_parquet(events, args.output)
    print(f"wrote {len(events):,} synthetic L3 events (seed {args.seed}) to {args.output}")
    return 0


def cmd_convert(args):
    from lobsim import data

    opts = {"strict": args.strict}
    for name in ("tick_size", "lot_size", "symbol"):
        if getattr(args, name) is not None:
            opts[name] = getattr(args, name)
    inputs = args.inputs
    t = time.perf_counter()
    if args.format == "lobster":
        if len(inputs) not in (1, 2):
            raise SystemExit("lobster takes a vendor zip, or the message CSV and the orderbook CSV")
        events = data.read_lobster(*inputs, **opts)
    elif args.format == "dbn":
        if len(inputs) != 1:
            raise SystemExit("dbn takes one .dbn or .dbn.zst file")
        if args.lot_size and not args.tick_size:
            raise SystemExit("dbn: --lot-size needs --tick-size (and --symbol)")
        if args.tick_size:
            if not args.symbol:
                raise SystemExit("dbn: --tick-size needs --symbol")
            events = data.read_dbn(inputs[0], strict=args.strict,
                                   instrument=Instrument(args.symbol, args.tick_size, args.lot_size or "1"))
        else:
            events = data.read_dbn(inputs[0], strict=args.strict)
    elif args.format == "binance":
        events = data.read_binance(inputs, **opts)
    else:
        if len(inputs) not in (1, 2):
            raise SystemExit("tardis takes an incremental_book_L2 CSV and optionally a trades CSV")
        events = data.read_tardis(*inputs, **opts)
    secs = time.perf_counter() - t
    data.write_parquet(events, args.output)
    print(f"read {len(events):,} events in {secs:.2f} s; wrote {args.output}")
    print(events.report)
    return 0


def cmd_info(args):
    from lobsim.data import read_parquet

    ev = read_parquet(args.file)
    a = ev.array
    ins = ev.instrument
    print(f"file:        {args.file}")
    print(f"instrument:  {ins.symbol} (tick {ins.tick_size}, lot {ins.lot_size})")
    print(f"events:      {len(a):,}")
    if len(a):
        t0, t1 = np.datetime64(int(a["ts_exch"][0]), "ns"), np.datetime64(int(a["ts_exch"][-1]), "ns")
        print(f"span:        {t0} .. {t1} (exchange clock, UTC)")
        lat = a["ts_local"] - a["ts_exch"]
        print(f"feed latency (ts_local - ts_exch): median {np.median(lat) / 1e3:,.1f} us, "
              f"max {lat.max() / 1e3:,.1f} us")
    counts = Counter(a["kind"].tolist())
    for kind in EventKind:
        if counts.get(kind.value):
            print(f"  {kind.name:<10} {counts[kind.value]:>12,}")
    print(ev.report)
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
    r.add_argument("--batch-rows", type=int, default=1 << 20, help="events read and applied per chunk")
    r.set_defaults(func=cmd_replay)

    g = sub.add_parser("generate", help="write a seeded synthetic L3 event file")
    g.add_argument("-o", "--output", required=True)
    g.add_argument("--events", type=int, default=200_000)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("convert", help="convert vendor captures to a lobsim Parquet event file")
    c.add_argument("format", choices=READERS)
    c.add_argument("inputs", nargs="+", help="input file(s) as the format needs")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--tick-size", help="exact tick size, e.g. 0.01 (default: the reader's)")
    c.add_argument("--lot-size", help="exact lot size (default: the reader's)")
    c.add_argument("--symbol")
    c.add_argument("--strict", action="store_true", help="fail on the first anomaly instead of counting it")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("info", help="summarize a stored event file")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (LobError, OSError, ImportError) as exc:
        print(f"lobsim: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
