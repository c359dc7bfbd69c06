"""What `virtops serve`'s usage history costs: one sample of 2,000 running domains every 5 s.

libvirt's test driver runs the 2,000 domains in this process (no QEMU: a lab host cannot boot
2,000 guests on 2 cores). Each round is what the sampler does every 5 s: one bulk
getAllDomainStats call and the host's counters (ops/stats.take), the figures against the previous
sample, and the ring buffers' update (web/history.py); saving the buffers to disk (once a minute)
is timed apart. The test driver's records hold states only, so the arithmetic on counters is
fed by copying a real guest's counters into every record: the figures are computed for all 2,000.
CPU time of this process (time.process_time), as a share of one core at one round per 5 s.

    python bench/bench_history.py [--domains 2000] [--rounds 20]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from virtops.host import Host
from virtops.ops import stats
from virtops.web.history import SAMPLE_S, History

REAL_GUEST = {"state.state": 1, "vcpu.current": 1, "cpu.time": 8_310_000_000, "balloon.current": 131072,
              "balloon.rss": 219108, "block.count": 1, "block.0.rd.bytes": 12800, "block.0.rd.reqs": 4,
              "block.0.wr.bytes": 0, "block.0.wr.reqs": 0, "net.count": 1, "net.0.rx.bytes": 3302,
              "net.0.tx.bytes": 2576}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    host = Host("test:///default")
    conn = host.conn
    for i in range(args.domains):
        conn.createXML(f"<domain type='test'><name>bench{i:05d}</name><memory>131072</memory>"
                       f"<os><type>hvm</type></os></domain>", 0)
    calls = conn.getAllDomainStats
    tick = [0]

    def with_counters(what, flags):  # a real guest's counters, growing each round
        tick[0] += 1
        return [(dom, {**REAL_GUEST, **values, "cpu.time": REAL_GUEST["cpu.time"] + tick[0] * 10**9})
                for dom, values in calls(what, flags)]

    conn.getAllDomainStats = with_counters
    with tempfile.TemporaryDirectory() as folder:
        history = History(host, Path(folder) / "history.json")
        before = stats.take(host)
        spent = []
        for _ in range(args.rounds):
            started = time.process_time()
            sample = stats.take(host)
            history.record(sample.time, stats.host_figures(before, sample), stats.vm_figures(before, sample))
            before = sample
            spent.append(time.process_time() - started)
        started = time.process_time()
        history.save()
        save_s = time.process_time() - started
        size = (Path(folder) / "history.json").stat().st_size
    median = statistics.median(spent)
    print(f"domains {args.domains}, rounds {args.rounds}: one round {median * 1000:.1f} ms CPU (median; "
          f"min {min(spent) * 1000:.1f}, max {max(spent) * 1000:.1f}) = {100 * median / SAMPLE_S:.2f}% of one core "
          f"at one round per {SAMPLE_S:g} s")
    print(f"save: {save_s * 1000:.1f} ms CPU once a minute = {100 * save_s / 60:.2f}% of one core; file {size} bytes "
          f"after {args.rounds} rounds")


if __name__ == "__main__":
    main()
