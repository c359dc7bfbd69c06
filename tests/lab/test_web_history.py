"""Usage history in `virtops serve`: a sample every 5 s into ring buffers per VM and host, served
at /api/stats and /api/vms/NAME/stats, kept on disk across a restart of serve (web/history.py)."""
from __future__ import annotations

import time

import httpx

from tests.helpers import free_port, serve_process
from tests.lab import test_stats
from virtops.web.history import history_file

PASSWORD = "history-password"
VM = test_stats.VM
running_guest = test_stats.running_guest  # the fixture: a running test guest


def _get(base: str, path: str) -> dict:
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.post("/login", json={"password": PASSWORD}).status_code == 200
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def _wait_points(base: str, path: str, count: int) -> dict:
    deadline = time.monotonic() + 60
    while True:
        series = _get(base, path)
        if len(series["points"]) >= count or time.monotonic() > deadline:
            return series
        time.sleep(2)


def test_history_is_sampled_served_and_survives_a_restart(lab, host, running_guest, tmp_path):
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    port = free_port()
    saved = history_file(host)
    saved.unlink(missing_ok=True)
    try:
        with serve_process(lab.uri, password, port=port) as base:
            vm = _wait_points(base, f"/api/vms/{VM}/stats?range=1h", 2)
            assert vm["step_s"] == 5 and vm["fields"][:2] == ["time", "cpu_percent"] and len(vm["points"]) >= 2
            at, cpu, memory, *_rates = vm["points"][-1]
            assert 0 <= cpu <= 100 and memory > 0 and at <= time.time()
            assert vm["points"][-1][0] - vm["points"][-2][0] >= 4  # 5 s apart, give or take the load
            hostwide = _get(base, "/api/stats?range=1h")
            assert hostwide["points"] and 0 <= hostwide["points"][-1][1] <= 100
            assert _get(base, "/api/stats?range=30d")["step_s"] == 3600
            assert any(s["name"] == VM for s in _get(base, "/api/stats/vms"))
            spark, = [s for s in _get(base, "/api/stats/vms?figures=cpu_percent&last=1") if s["name"] == VM]
            assert spark["fields"] == ["time", "cpu_percent"] and len(spark["points"]) == 1  # the newest point only
            assert spark["points"][0][0] >= vm["points"][-1][0]
            with httpx.Client(base_url=base) as anonymous:
                assert anonymous.get("/api/stats").status_code == 401
            before = vm["points"]
        assert saved.exists() and saved.stat().st_size < 1 << 20  # written at shutdown, and small
        with serve_process(lab.uri, password, port=port) as base:
            again = _get(base, f"/api/vms/{VM}/stats?range=1h")["points"]
            assert [p[0] for p in again[:len(before)]] == [p[0] for p in before]  # the old points are back
        with serve_process(lab.uri, password, port=port) as base:
            with httpx.Client(base_url=base, timeout=60) as client:
                client.post("/login", json={"password": PASSWORD})
                assert client.get("/api/vms/nosuchvm/stats").status_code == 404
                assert client.get("/api/stats?range=7d").status_code == 422
                refused = client.get("/api/stats/vms?figures=cpu")
                assert refused.status_code == 422 and refused.json()["field"] == "figures"
                assert refused.json()["error"].startswith("figures: 'cpu' is not accepted; give one of cpu_percent,")
    finally:
        saved.unlink(missing_ok=True)
