"""The arithmetic of usage figures (ops/stats.py) from two samples, and one sample of libvirt's test driver."""
from __future__ import annotations

from virtops.ops import stats


def _counters(cpu_ns: int, written: int, vcpus: int = 2) -> dict:
    return {"name": "web", "state": "running", "vcpus": vcpus, "cpu_time_ns": cpu_ns, "memory_bytes": 1 << 30,
            "memory_used_bytes": None, "memory_rss_bytes": 1 << 29, **{c: 0 for c in stats.COUNTERS[1:]},
            "disk_write_bytes": written}


def _sample(at: float, vms: dict) -> stats.Sample:
    host = {"cpus": 4, "cpu_busy_ns": int(at * 1e9), "cpu_total_ns": int(at * 4e9), "memory_bytes": 8 << 30,
            "memory_used_bytes": 2 << 30}
    return stats.Sample(at, at, host, vms)


def test_rates_are_differences_over_the_interval():
    before = _sample(10.0, {"u1": _counters(0, 1000)})
    after = _sample(12.0, {"u1": _counters(2 * 10**9, 5000), "u2": {**_counters(10, 0), "name": "zz"}})
    web, newcomer = sorted(stats.vm_figures(before, after), key=lambda r: r["uuid"])
    assert web["cpu_percent"] == 50.0  # 2 s of CPU time in 2 s on 2 vCPUs
    assert web["disk_write_bytes_per_s"] == 2000.0 and web["disk_read_iops"] == 0.0
    assert newcomer["cpu_percent"] is None and newcomer["totals"]["cpu_time_ns"] == 10  # one sample only
    host = stats.host_figures(before, after)
    assert host["cpu_percent"] == 25.0 and host["vms_sampled"] == 2


def test_a_counter_that_went_back_gives_no_figure():
    before = _sample(10.0, {"u1": _counters(5 * 10**9, 9000)})
    after = _sample(11.0, {"u1": _counters(10**9, 100)})  # the VM restarted in between
    row, = stats.vm_figures(before, after)
    assert row["cpu_percent"] is None and row["disk_write_bytes_per_s"] is None


def test_one_sample_of_the_test_driver():
    from virtops.host import Host

    host = Host("test:///default")  # its one running domain, "test"
    try:
        sample = stats.take(host, all=True)
        assert [v["name"] for v in sample.vms.values()] == ["test"]
        assert sample.host["cpus"] > 0 and sample.host["memory_bytes"] > 0
        assert list(stats.take(host, ["test"]).vms) == list(sample.vms)
    finally:
        host.close()

def test_history_tiers_fold_and_stay_bounded(tmp_path):
    from virtops.web import rings
    from virtops.web.history import History

    history = History(None, tmp_path / "h.hist")
    for i in range(800):  # 800 samples 5 s apart: 66 minutes
        history.record(1_000_000 + 5 * i, {"cpu_percent": 10.0}, [
            {"name": "web", "cpu_percent": float(i % 2) * 100, "memory_used_bytes": None, "memory_rss_bytes": 100,
             "disk_read_bytes_per_s": 1.0, "disk_write_bytes_per_s": 2.0, "net_rx_bytes_per_s": 3.0,
             "net_tx_bytes_per_s": None}])
    web = history.vms["web"]
    hour = web.points("1h")["points"]
    assert len(hour) == rings.TIERS["1h"][1] and hour[-1][0] == 1_000_000 + 5 * 799  # the newest 720
    assert [p[0] for p in hour] == sorted(p[0] for p in hour)
    minute = web.points("24h")["points"][1]
    assert minute[0] % 60 == 0 and minute[1:] == [50.0, 100, 1.0, 2.0, 3.0, None]  # the mean of twelve points
    history.save()
    again = History(None, tmp_path / "h.hist")
    for range_ in rings.TIERS:
        assert again.vms["web"].points(range_) == web.points(range_)
    assert again.host_series.points("1h") == history.host_series.points("1h")
    for both in (history, again):  # the minute and hour under way when saved go on after the restart
        for i in range(800, 1600):
            both.record(1_000_000 + 5 * i, {"cpu_percent": float(i % 3)}, [])
    assert again.host_series.points("24h") == history.host_series.points("24h")
    assert again.host_series.points("30d") == history.host_series.points("30d")
    assert len(history.host_series.points("30d")["points"]) == 2  # 2 h 13 min of samples: two whole hours


def test_a_damaged_or_foreign_history_file_starts_empty(tmp_path):
    from virtops.web.history import History

    history = History(None, tmp_path / "h.hist")
    history.record(1_000_000, {"cpu_percent": 1.0}, [])
    history.save()
    whole = (tmp_path / "h.hist").read_bytes()
    for damaged in (whole[:-3], whole[:20], b'{"host": {}}', whole.replace(b'"series": 1', b'"series": 4')):
        (tmp_path / "h.hist").write_bytes(damaged)
        assert History(None, tmp_path / "h.hist").host_series.points("1h")["points"] == []
    assert not list(tmp_path.glob("*.partial"))


def test_host_info_samples_cpu_only_over_a_window_it_says(monkeypatch):
    from virtops.daemon import facts
    from virtops.daemon.connection import Connection

    host = Connection("test:///default")
    slept = []
    monkeypatch.setattr(facts.time, "sleep", lambda s: slept.append(s))
    quick = facts.info_row(host, None)
    assert slept == []  # no window: nothing to wait for
    assert (quick["cpu_percent"], quick["cpu_window_s"]) == (None, None) and quick["memory_used_bytes"] > 0
    monkeypatch.undo()
    sampled = facts.info_row(host, 0.1)
    assert sampled["cpu_window_s"] >= 0.1  # the test driver gives no CPU times: no figure, but the window
    assert sampled["cpu_percent"] is None
