"""Shared bench helpers: report throughput in messages/s and the process's peak memory."""
import resource
import sys


def peak_rss_mib():
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def report(benchmark, name, n_messages):
    """Print and record messages/s (from the best and mean round) plus peak memory."""
    if benchmark.stats is None or not benchmark.stats.stats.data:  # --benchmark-disable
        print(f"\n{name}: timing disabled")
        return
    stats = benchmark.stats.stats
    best = n_messages / stats.min
    mean = n_messages / stats.mean
    benchmark.extra_info.update({"messages": n_messages, "msgs_per_s_best": best, "msgs_per_s_mean": mean,
                                 "peak_rss_mib": peak_rss_mib()})
    print(f"\n{name}: {n_messages:,} messages, best {best:,.0f} msg/s, mean {mean:,.0f} msg/s, "
          f"peak RSS {peak_rss_mib():,.0f} MiB")
