"""What `virtops serve`'s usage history costs: one sample of 2,000 running domains every 5 s.

libvirt's test driver runs the 2,000 domains in this process (no QEMU: a lab host cannot boot
2,000 guests on 2 cores). Each round is what the sampler does every 5 s: one bulk
getAllDomainStats call and the host's counters (ops/stats.take), the figures against the previous
sample, and the ring buffers' update (web/history.py); saving the buffers to disk (every SAVE_S)
is timed apart, after the rounds and again with every buffer full (30 days of points for every
VM: values like a real guest's, with noise, so that compression is not flattered), with the time to
read the full file back (what `serve` does when it starts). The test driver's records hold states only, so the arithmetic on counters is
fed by copying a real guest's counters into every record: the figures are computed for all 2,000.
CPU time of this process (time.process_time), as a share of one core at one round per 5 s.

    python bench/bench_history.py [--domains 2000] [--rounds 20]
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from virtops.host import Host
from virtops.ops import stats
from virtops.web import rings
from virtops.web.history import SAMPLE_S, SAVE_S, History

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
        history = History(host, Path(folder) / "history.hist")
        before = stats.take(host)
        spent = []
        for _ in range(args.rounds):
            started = time.process_time()
            sample = stats.take(host)
            history.record(sample.time, stats.host_figures(before, sample), stats.vm_figures(before, sample))
            before = sample
            spent.append(time.process_time() - started)
        save_s, size = _save(history)
        _fill(history)
        full_save_s, full_size = _save(history)
        started = time.process_time()
        again = History(host, history.path)
        load_s = time.process_time() - started
        assert len(again.vms) == len(history.vms) and again.vms["bench00000"].points("30d") == \
            history.vms["bench00000"].points("30d")
    median = statistics.median(spent)
    print(f"domains {args.domains}, rounds {args.rounds}: one round {median * 1000:.1f} ms CPU (median; "
          f"min {min(spent) * 1000:.1f}, max {max(spent) * 1000:.1f}) = {100 * median / SAMPLE_S:.2f}% of one core "
          f"at one round per {SAMPLE_S:g} s")
    print(f"save: {save_s * 1000:.1f} ms CPU every {SAVE_S:g} s = {100 * save_s / SAVE_S:.3f}% of one core; file {size} bytes "
          f"after {args.rounds} rounds")
    print(f"full buffers ({len(history.vms)} VMs and the host, {rings.SERIES_BYTES} bytes a series unpacked, "
          f"{(len(history.vms) + 1) * rings.SERIES_BYTES / 1e6:.1f} MB): save {full_save_s * 1000:.0f} ms CPU "
          f"= {100 * full_save_s / SAVE_S:.2f}% of one core at one save per {SAVE_S:g} s, file {full_size / 1e6:.1f} MB; "
          f"load {load_s * 1000:.0f} ms CPU")


def _save(history: History) -> tuple[float, int]:
    started = time.process_time()
    history.save()
    return time.process_time() - started, history.path.stat().st_size


def _fill(history: History) -> None:
    """Every tier of every series full: a few VM profiles (a busy CPU, some disk and network
    traffic, noise in every figure), dealt round the VMs."""
    noise = random.Random(16)
    profiles = []
    for busy in (3.0, 12.0, 40.0, 0.5, 75.0):
        series = rings.Series("profile")
        for key, (step, size) in rings.TIERS.items():
            ring = series.tiers[key]
            for i in range(size):
                ring.append(1_700_000_000 + i * step, [
                    busy * noise.uniform(0.5, 1.5), 219_108_352 + noise.randrange(0, 1 << 20, 4096),
                    noise.choice((0.0, 0.0, noise.uniform(0, 5e5))), noise.choice((0.0, noise.uniform(0, 2e6))),
                    noise.uniform(0, 3000), noise.uniform(0, 2500)])
        profiles.append(series.tiers)
    for index, series in enumerate([history.host_series, *history.vms.values()]):
        profile = profiles[index % len(profiles)]
        series.tiers = {key: rings.Ring(ring.size, rings.array("I", ring.times), [rings.array("f", c) for c in ring.columns])
                        for key, ring in profile.items()}


if __name__ == "__main__":
    main()
