"""The README's main job: `virtops demo` runs SCENARIO.md end to end and removes its lab."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from virtops.cli.demo import VM
from virtops.lab.labhost import Lab


def test_demo_runs_the_handbook_and_leaves_nothing():
    name = f"demo-{os.getpid() % 10000}"
    result = subprocess.run([sys.executable, "-m", "virtops", "demo"], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "VIRTOPS_DEMO_LAB": name})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert "the guest reports: /dev/vda 67108864 bytes, /dev/vdb 1048576000 bytes" in out
    summary = out.split("\nSummary\n", 1)[1]
    assert "guest sees /dev/vdb                1048576000 bytes" in summary
    assert "(inside .128-.254)" in summary
    assert "pool test                          running, autostart, mode 0711 (0700 + x for QEMU)" in summary
    assert "cannot reach the disks in it" in result.stdout and "virtops pool set test --mode 0711" in result.stdout
    # Step 8: a second host on the same segment shares the nfs pool; a live move; a refused one.
    assert f"nfs on {name}-b" in summary and "volume nfs seen" in summary
    uptimes = re.search(r"live move over nfs\s+[0-9.]+ s, uptime ([0-9.]+) s -> ([0-9.]+) s", summary)
    assert uptimes and float(uptimes[2]) > float(uptimes[1]), summary  # the same boot: its uptime went on
    assert "has no network mynetwork; create it there first." in out
    assert f"refused move                       before anything moved; {VM} running on {name}" in summary
    for lab in (Lab(name), Lab(f"{name}-b")):
        assert lab.status().state == "down" and not lab.exists()
