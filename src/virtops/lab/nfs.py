"""A real NFS server (Debian's nfs-ganesha) with the handbook's address 192.168.0.254 exporting /nfs,
so source discovery (libvirt's find-storage-pool-sources, virt-manager's "Browse") and netfs pools
are tested against a real server. It runs either in one lab's 'outside' namespace (NfsServer(lab),
for as long as the caller holds it) or on a lab segment (Segment.nfs_server in labhost.py: started
with the segment, stopped by the last lab leaving it), where every lab on the segment shares the
one export.

All traffic stays inside the lab's namespaces. rpcbind and ganesha run in a private mount
namespace whose /run and /var/lib/nfs are tmpfs, so nothing of the real host's NFS state is
touched. The exported directory is a temporary directory; its NFSv4 pseudo path, which MOUNT
also lists (Mount_Path_Pseudo), is /nfs.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from virtops.base.errors import VirtopsError
from virtops.lab.proc import pid_alive, run, wait_for_exit

ADDRESS = "192.168.0.254"
EXPORT = "/nfs"
START_TIMEOUT_S = 30

CONFIG = """
NFS_CORE_PARAM {{ Protocols = 3, 4; Mount_Path_Pseudo = true; Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; }}
EXPORT {{
    Export_Id = 1; Path = {path}; Pseudo = {pseudo}; Access_Type = RW; Squash = No_Root_Squash;
    Protocols = 3, 4; Transports = TCP, UDP; FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = *; Access_Type = RW; }}
}}
"""


class NfsServer:
    def __init__(self, lab=None, *, netns: str = "", state: Path | None = None,
                 probe_netns: str = "", device: str = "lo"):
        """NfsServer(lab): in the lab's outside namespace; or netns=, state= (its directory) and
        probe_netns= (where clients are, to see it answer) for a server elsewhere."""
        if lab is not None:
            if not lab.has_uplink():
                raise VirtopsError(f"lab {lab.name} has no outside namespace; start it with an uplink.")
            netns, probe_netns = lab.outside_netns, lab.netns
            state = Path(tempfile.mkdtemp(prefix=f"virtops-nfs-{lab.name}-"))
        self.netns, self.probe_netns, self.device = netns, probe_netns, device
        self.state = state
        self.export_dir = self.state / "export"
        self.process: subprocess.Popen | None = None

    @property
    def pid_file(self) -> Path:
        return self.state / "server.pid"

    def running(self) -> bool:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return False
        return pid_alive(pid) and str(self.state) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")

    def start(self) -> "NfsServer":
        for tool in ("ganesha.nfsd", "rpcbind", "showmount"):
            if not shutil.which(tool):
                raise VirtopsError(f"the lab NFS server needs {tool}; install nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common.")
        self.export_dir.mkdir(parents=True, exist_ok=True)
        (self.state / "ganesha.conf").write_text(CONFIG.format(path=self.export_dir, pseudo=EXPORT))
        if ADDRESS not in run("ip", "-n", self.netns, "addr", "show", "dev", self.device).stdout:
            run("ip", "-n", self.netns, "addr", "add", f"{ADDRESS}/32", "dev", self.device)
        log = (self.state / "server.out").open("wb")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private", "--",
             sys.executable, "-m", "virtops.lab.nfs", str(self.state)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        log.close()
        self.pid_file.write_text(f"{self.process.pid}\n")
        self._wait_until_exporting()
        return self

    def _wait_until_exporting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            shown = run("ip", "netns", "exec", self.probe_netns, "showmount", "--no-headers", "-e", ADDRESS, check=False)
            if shown.returncode == 0 and EXPORT in shown.stdout:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        detail = (self.state / "server.out").read_text(errors="replace").strip().splitlines()[-3:]
        self.stop()
        raise VirtopsError(f"the lab NFS server did not start: {' / '.join(detail) or 'no output'}.")

    def stop(self) -> None:
        """Stop ganesha and rpcbind by the process group we started (ours, or the one the pid
        file names when another process started it), then remove the state."""
        pid = self.process.pid if self.process else (int(self.pid_file.read_text()) if self.running() else None)
        if pid and pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            wait_for_exit(pid, 10)
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
                wait_for_exit(pid, 5)
        if self.process:
            self.process.wait(timeout=10)
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> "NfsServer":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def _serve(state: Path) -> None:
    """Inside the private mount and the outside network namespace: rpcbind, then ganesha."""
    for private in ("/run", "/var/lib/nfs"):
        if Path(private).is_dir():
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", private], check=True)
    Path("/var/lib/nfs/ganesha").mkdir(parents=True, exist_ok=True)
    rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"])
    deadline = time.monotonic() + 10
    while not Path("/run/rpcbind.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ganesha = subprocess.Popen(["ganesha.nfsd", "-F", "-f", str(state / "ganesha.conf"), "-L", str(state / "ganesha.log"),
                                "-p", str(state / "ganesha.pid"), "-N", "NIV_EVENT"])

    def stop(_sig, _frame):
        for process in (ganesha, rpcbind):
            process.terminate()
        for process in (ganesha, rpcbind):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    ganesha.wait()
    rpcbind.terminate()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
