"""A lab host: a private libvirtd (with virtlogd) in its own network and mount namespaces.

Layout of a lab's state directory (default /var/lib/virtops/labs/NAME):

    etc/ lib/ run/ log/ cache/   bound over /etc/libvirt, /var/lib/libvirt, /run/libvirt,
                                 /var/log/libvirt, /var/cache/libvirt inside the mount namespace
    lvm/                         bound over /etc/lvm (where the machine has LVM): the lab's own
                                 LVM configuration, seeing only the devices given to it (lab/lvm.py)
    ns/mnt                       the persistent mount namespace (a bind mount of nsfs)
    keeper.pid libvirtd.pid virtlogd.pid

The network namespace is a named one (`ip netns`), `virtops-NAME`; with an uplink, a second
one, `virtops-NAME-out`, plays the outside world, joined to the lab by a veth pair. Labs on a
segment (`lab up NAME --segment SEG`) share a layer-2 "physical" network: a bridge in a namespace
of its own, `virtops-seg-SEG`, with a veth from each lab (`seg0` inside the lab) and an address
per lab allocated from SEGMENT_NETWORK; the last lab to go down removes the segment.
Nothing here touches the real host's libvirt state, links, bridges or firewall rules.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import libvirt

from virtops.base.errors import InvalidInput, VirtopsError
from virtops.base.names import is_lab_name
from virtops.lab import address, lvm, nfs
from virtops.lab.sshd import LabSshd
from virtops.lab.proc import command_line_names, pid_alive, run, wait_for_exit

DEFAULT_ROOT = Path(address.DEFAULT_ROOT)
MARKER = ".virtops-lab"
START_TIMEOUT_S = 30
BIND_MOUNTS = {
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "run": "/run/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}
# A lab runs QEMU as Debian ships it: as libvirt-qemu, with DAC ownership (dynamic_ownership and
# remember_owner as shipped), a private mount namespace per guest and whatever security driver the
# kernel offers. The one line the sandbox needs (docs/labs.md, "What a lab host changes"):
QEMU_CONF_OVERRIDES = {
    # A mount namespace does not separate cgroups: every daemon places its guests at
    # /machine/qemu-ID-NAME.libvirt-qemu of the real host's hierarchy, so guests of two labs with
    # the same id and name share one cgroup (their limits and statistics mix; stopping one fails
    # to remove it), and /machine stays behind on the real host when the labs are gone.
    "cgroup_controllers": "[ ]",
}
# The directories bound over /var/lib/libvirt, /var/cache/libvirt and /run/libvirt get the mode
# Debian gives them, whatever the umask: QEMU (libvirt-qemu) must pass through /var/lib/libvirt to
# reach the pools' directories under it.
STOCK_MODES = {"lib": 0o755, "cache": 0o755, "run": 0o755}
# A lab's daemon is also a remote host: it listens on TCP inside its own network namespace, so a
# client in the lab's outside namespace reaches it as qemu+tcp://198.51.100.2/system, the same
# remote protocol that qemu+ssh:// and qemu+tls:// carry. Without authentication: nothing but the
# lab's own namespaces can reach that address.
LIBVIRTD_CONF_OVERRIDES = {
    "log_outputs": '"3:file:/var/log/libvirt/libvirtd.log"',
    "listen_tcp": "1",
    "listen_tls": "0",
    "auth_tcp": '"none"',
}
# The uplink segment uses TEST-NET-2 (RFC 5737): never a real address.
UPLINK_LAB_ADDRESS = "198.51.100.2/24"
UPLINK_OUTSIDE_ADDRESS = "198.51.100.1/24"
UPLINK_GATEWAY = "198.51.100.1"
UPLINK_DEVICE = "eth0"
# Segments use TEST-NET-3 (RFC 5737), not the uplinks' TEST-NET-2: a lab with an uplink and a
# segment then has two distinct connected networks, never two routes to one.
SEGMENT_NETWORK = "203.0.113.0/24"
SEGMENT_PREFIX = "203.0.113."
SEGMENT_HOSTS = range(10, 251)  # .10-.250 go to labs
SEGMENT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
SEGMENT_DEVICE = "seg0"
MOUNT_NFS = "/usr/sbin/mount.nfs"  # what mount(8) runs for -t nfs (/sbin is /usr/sbin on Debian 12)
SEGMENT_BRIDGE = "br0"


def lab_root() -> Path:
    return Path(address.lab_root())


@dataclass(frozen=True)
class LabStatus:
    name: str
    state: str  # running | crashed | down
    uri: str
    state_dir: str
    uplink: bool
    libvirtd_pid: int | None
    detail: str = ""
    segment: str | None = None
    segment_address: str | None = None  # the lab's address on its segment (203.0.113.N/24)
    ssh_uri: str | None = None  # qemu+ssh:// from the outside namespace, while the lab's sshd runs

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class Lab:
    def __init__(self, name: str, root: Path | str | None = None):
        self.name = name
        self.state_dir = Path(address.state_dir(name, root))

    # -- names and paths ------------------------------------------------------------
    @property
    def netns(self) -> str:
        return f"virtops-{self.name}"

    @property
    def outside_netns(self) -> str:
        return f"virtops-{self.name}-out"

    @property
    def socket(self) -> Path:
        return Path(address.socket_path(str(self.state_dir)))

    @property
    def uri(self) -> str:
        return address.uri_at(str(self.state_dir))

    @property
    def remote_uri(self) -> str:
        """The daemon as a remote host, for clients in the outside namespace (labs with an uplink)."""
        return f"qemu+tcp://{UPLINK_LAB_ADDRESS.split('/')[0]}/system"

    def sshd(self) -> LabSshd:
        """The lab's own sshd, on its uplink address (lab/sshd.py)."""
        return LabSshd(self, UPLINK_LAB_ADDRESS.split("/")[0])

    @property
    def ssh_uri(self) -> str:
        """The daemon as operators reach a remote host, over ssh from the outside namespace (labs up with ssh)."""
        return self.sshd().uri

    @property
    def peer_uri(self) -> str | None:
        """The daemon as the other labs of its segment reach it (migrations go peer to peer)."""
        address = self.segment_membership().get("address")
        return f"qemu+tcp://{address.split('/')[0]}/system" if address else None

    @property
    def lvm_dir(self) -> Path:
        return self.state_dir / "lvm"

    def give_lvm_devices(self, devices: list[str]) -> None:
        """Let the lab's LVM (libvirt's logical pools) see exactly these devices, e.g. a loop
        device a test attached; [] hides every device again. Takes effect at the next LVM command."""
        lvm.write_config(self.lvm_dir, self.name, devices)

    @property
    def mount_ns(self) -> Path:
        return self.state_dir / "ns" / "mnt"

    def _pid(self, daemon: str) -> int | None:
        try:
            return int((self.state_dir / f"{daemon}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def exists(self) -> bool:
        return (self.state_dir / MARKER).exists()

    def has_uplink(self) -> bool:
        return netns_exists(self.outside_netns)

    # -- life cycle -----------------------------------------------------------------
    def up(self, uplink: bool = False, segment: str | None = None, ssh: bool = False) -> LabStatus:
        """Start the lab (idempotent) and return once its libvirtd answers; with `segment`, join
        that shared segment (created by the first lab on it); with `ssh`, also its own sshd on the
        uplink's address (so an uplink too)."""
        uplink = uplink or ssh
        if self.name.startswith("seg-"):  # virtops-seg-X is segment X's namespace
            raise InvalidInput("lab name", f"{self.name!r}: names starting with 'seg-' are kept for segments; choose another.")
        if segment is not None:
            check_segment_name(segment)
            joined = self.segment_membership().get("segment")
            if joined and joined != segment:
                raise InvalidInput("--segment", f"lab {self.name} is on segment {joined} already; "
                                                f"`virtops lab down {self.name}` first to move it.")
        current = self.status()
        if current.state == "running":
            if uplink and not current.uplink:
                self._add_uplink()
            if segment and not current.segment:
                Segment(segment, self.state_dir.parent).join(self)
            if ssh:
                self.sshd().start()
            return self.status()
        if current.state == "crashed":
            self.down(remove_state=False)
        try:
            self._prepare_state_dir()
            self._create_namespaces()
            self._start_keeper()
            self._wait_until_answering()
            if uplink:
                self._add_uplink()
            if segment:
                Segment(segment, self.state_dir.parent).join(self)
            if ssh:
                self.sshd().start()
        except BaseException:
            self.down(remove_state=False)
            raise
        return self.status()

    def down(self, remove_state: bool = True) -> None:
        """Stop everything the lab started, by pid, and remove its namespaces and mounts."""
        self._stop_guests_and_networks()
        self.sshd().stop()
        self._stop_keeper()
        self._kill_namespace_processes()
        joined = self.segment_membership().get("segment")
        if joined:
            Segment(joined, self.state_dir.parent).leave(self)
        for netns in (self.outside_netns, self.netns):
            if netns_exists(netns):
                run("ip", "netns", "delete", netns)
        self._unmount_namespace_files()
        if remove_state and self.exists():
            shutil.rmtree(self.state_dir)

    def restart_libvirtd(self, wait: bool = True) -> None:
        """Restart the lab's libvirtd as a host's service manager would (guests and networks stay
        up): the fault that tests of convergence inject midway through a command."""
        old = self._pid("libvirtd")
        keeper = self._pid("keeper")
        if not pid_alive(keeper):
            raise VirtopsError(f"lab host {self.name} is not running; `virtops lab up {self.name}` first.")
        os.kill(keeper, signal.SIGUSR1)
        if not wait:
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            new = self._pid("libvirtd")
            if new and new != old and pid_alive(new) and self._answers():
                return
            time.sleep(0.1)
        raise VirtopsError(f"lab host {self.name}: libvirtd did not come back after a restart ({self._crash_detail()}).")

    def status(self) -> LabStatus:
        libvirtd = self._pid("libvirtd")
        state, detail = "down", ""
        if self.exists() and (netns_exists(self.netns) or self.mount_ns.exists()):
            if pid_alive(self._pid("keeper")) and pid_alive(libvirtd) and self._answers():
                state = "running"
            else:
                state, detail = "crashed", self._crash_detail()
        joined = self.segment_membership()
        sshd = self.sshd()
        return LabStatus(self.name, state, self.uri, str(self.state_dir), self.has_uplink(),
                         libvirtd if state == "running" else None, detail,
                         joined.get("segment"), joined.get("address"), sshd.uri if sshd.running() else None)

    # -- steps of up ----------------------------------------------------------------
    def _prepare_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sub in [*BIND_MOUNTS, "ns"]:
            (self.state_dir / sub).mkdir(exist_ok=True)
        for sub, mode in STOCK_MODES.items():
            (self.state_dir / sub).chmod(mode)
        if not (self.state_dir / "etc" / "libvirtd.conf").exists():
            seed_config(self.state_dir / "etc")
        give_host_uuid(self.state_dir / "etc" / "libvirtd.conf")
        (self.state_dir / MARKER).write_text(json.dumps({"name": self.name}) + "\n")

    def _create_namespaces(self) -> None:
        if not netns_exists(self.netns):
            run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        ns_dir = self.state_dir / "ns"
        if not is_mountpoint(ns_dir):
            # nsfs may only be bound under a private mount; this is how `ip netns` does it too.
            run("mount", "--bind", str(ns_dir), str(ns_dir))
            run("mount", "--make-private", str(ns_dir))
        self.mount_ns.touch()
        run("unshare", f"--mount={self.mount_ns}", "--propagation", "private", "true")
        self._drop_foreign_lab_mounts()
        for sub, target in BIND_MOUNTS.items():
            Path(target).mkdir(parents=True, exist_ok=True)
            self._in_lab("mount", "--bind", str(self.state_dir / sub), target)
        self._bind_lvm_config()
        self._install_nfs_client()

    def _bind_lvm_config(self) -> None:
        """LVM's commands in the lab read the lab's own configuration (lab/lvm.py), which sees no
        device until one is given. Without LVM on the machine there is nothing to bind it over."""
        if not Path(lvm.SYSTEM_DIR).is_dir():
            return
        if not (self.lvm_dir / "lvm.conf").exists():
            self.give_lvm_devices([])
        self._in_lab("mount", "--bind", str(self.lvm_dir), lvm.SYSTEM_DIR)

    def _install_nfs_client(self) -> None:
        """On a kernel without an NFS client, the lab's mount namespace (only) gets the userspace
        client (lab/nfsclient.py) bound over mount.nfs, which libvirt's netfs pools call."""
        if kernel_has_nfs() or not Path(MOUNT_NFS).exists():
            return
        helper = self.state_dir / "bin" / "mount.nfs"
        helper.parent.mkdir(exist_ok=True)
        source = Path(__file__).resolve().parents[2]
        helper.write_text(f"#!{sys.executable}\n# virtops lab {self.name}: the userspace NFS client\n"
                          f"import sys\nsys.path.insert(0, {str(source)!r})\n"
                          "from virtops.lab.nfsclient import main\nsys.exit(main(sys.argv[1:]))\n")
        helper.chmod(0o755)
        self._in_lab("mount", "--bind", str(helper), MOUNT_NFS)

    def _drop_foreign_lab_mounts(self) -> None:
        """The new mount namespace copied the host's mounts, including other labs' namespace
        files; unmount them here so this lab never keeps another lab's namespace alive."""
        mounts = self._in_lab("cat", "/proc/self/mountinfo").stdout.splitlines()
        root = str(self.state_dir.parent)
        for line in reversed(mounts):
            mount_point = line.split()[4]
            if mount_point.startswith(root + "/"):
                self._in_lab("umount", "--lazy", mount_point, check=False)

    def _start_keeper(self) -> None:
        log = (self.state_dir / "log" / "keeper.out").open("ab")
        for stale in ("keeper.pid", "libvirtd.pid", "virtlogd.pid"):
            (self.state_dir / stale).unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)
        subprocess.Popen(
            ["nsenter", f"--mount={self.mount_ns}", f"--net=/run/netns/{self.netns}", "--",
             sys.executable, "-m", "virtops.lab.keeper", str(self.state_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        log.close()

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._answers():
                return
            if (self.state_dir / "keeper.pid").exists() and not pid_alive(self._pid("keeper")):
                break  # the keeper exited: libvirtd will not come up
            time.sleep(0.1)
        raise VirtopsError(f"lab host {self.name}: libvirtd did not start ({self._crash_detail()}).")

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError:
            return False
        try:
            conn.getLibVersion()
            return True
        except libvirt.libvirtError:
            return False
        finally:
            conn.close()

    def _add_uplink(self) -> None:
        if not netns_exists(self.outside_netns):
            run("ip", "netns", "add", self.outside_netns)
        run("ip", "-n", self.outside_netns, "link", "set", "lo", "up")
        if run("ip", "-n", self.netns, "link", "show", UPLINK_DEVICE, check=False).returncode != 0:
            run("ip", "-n", self.netns, "link", "add", UPLINK_DEVICE, "type", "veth",
                "peer", "name", UPLINK_DEVICE, "netns", self.outside_netns)
            run("ip", "-n", self.netns, "addr", "add", UPLINK_LAB_ADDRESS, "dev", UPLINK_DEVICE)
            run("ip", "-n", self.outside_netns, "addr", "add", UPLINK_OUTSIDE_ADDRESS, "dev", UPLINK_DEVICE)
            run("ip", "-n", self.netns, "link", "set", UPLINK_DEVICE, "up")
            run("ip", "-n", self.outside_netns, "link", "set", UPLINK_DEVICE, "up")
            run("ip", "-n", self.netns, "route", "add", "default", "via", UPLINK_GATEWAY)

    def segment_membership(self) -> dict:
        """{"segment": SEG, "address": "203.0.113.N/24"} while the lab is on a segment, else {}."""
        try:
            return json.loads((self.state_dir / SEGMENT_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _in_lab(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a tool inside the lab's mount namespace (and network namespace when it exists)."""
        enter = ["nsenter", f"--mount={self.mount_ns}"]
        if netns_exists(self.netns):
            enter.append(f"--net=/run/netns/{self.netns}")
        return run(*enter, "--", *argv, check=check)

    # -- steps of down --------------------------------------------------------------
    def _stop_guests_and_networks(self) -> None:
        """Let libvirt stop what it runs (guests, dnsmasq, firewall rules) while it still can."""
        if not self._answers():
            return
        conn = libvirt.open(self.uri)
        try:
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                _quietly(dom.destroy)
            for net in conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
                _quietly(net.destroy)
        finally:
            conn.close()

    def _stop_keeper(self) -> None:
        keeper = self._pid("keeper")
        if pid_alive(keeper):
            os.kill(keeper, signal.SIGTERM)
            wait_for_exit(keeper, 20)
        for daemon in ("libvirtd", "virtlogd", "keeper"):
            pid = self._pid(daemon)
            if pid_alive(pid) and command_line_names(pid, str(self.state_dir)):
                os.kill(pid, signal.SIGKILL)
                wait_for_exit(pid, 5)

    def _kill_namespace_processes(self) -> None:
        """Whatever still runs in the lab's namespaces (a stray dnsmasq or QEMU) is ours."""
        for netns in (self.netns, self.outside_netns):
            if not netns_exists(netns):
                continue
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = [int(p) for p in netns_pids(netns)]
                for pid in pids:
                    _quietly(os.kill, pid, sig)
                for pid in pids:
                    wait_for_exit(pid, 5)

    def _unmount_namespace_files(self) -> None:
        ns_dir = self.state_dir / "ns"
        if self.mount_ns.exists() and is_mountpoint(self.mount_ns):
            run("umount", str(self.mount_ns))
        if is_mountpoint(ns_dir):
            run("umount", str(ns_dir))

    def _crash_detail(self) -> str:
        for log in ("libvirtd.out", "keeper.out", "libvirtd.log"):
            path = self.state_dir / "log" / log
            if path.exists():
                lines = [l for l in path.read_text(errors="replace").splitlines() if "error" in l.lower()]
                if lines:
                    return f"last error in {path}: {lines[-1].strip()}"
        return "libvirtd is not running"


SEGMENT_FILE = "segment.json"


def check_segment_name(name: str) -> str:
    if not SEGMENT_NAME_PATTERN.match(name):
        raise InvalidInput("--segment", f"{name!r} is not accepted; use 1-15 lowercase letters, digits or '-', "
                                        f"starting with a letter.")
    return name


class Segment:
    """A shared layer-2 segment: a bridge in the namespace virtops-seg-NAME, a veth to each lab on
    it. Who is on it and with which address is kept in segments/NAME.json under the lab root,
    changed only under an flock on segments/NAME.lock: labs joining at once get distinct addresses."""

    def __init__(self, name: str, root: Path | None = None):
        self.name = check_segment_name(name)
        self.dir = (root or lab_root()) / ".segments"

    @property
    def netns(self) -> str:
        return f"virtops-seg-{self.name}"

    @property
    def members_file(self) -> Path:
        return self.dir / f"{self.name}.json"

    def members(self) -> dict[str, int]:
        """lab name -> host number on the segment."""
        try:
            return {str(k): int(v) for k, v in json.loads(self.members_file.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def join(self, lab: "Lab") -> str:
        """Give the lab its address and its veth on the bridge (creating the segment when it is the
        first); returns the address. Idempotent."""
        with self._locked():
            members = self._without_stale(self.members(), lab)
            number = members.get(lab.name) or self._free_number(members)
            members[lab.name] = number
            self._create()
            self._plug(lab, number)
            self._save(members)
            self._start_nfs_server()
        address = f"{SEGMENT_PREFIX}{number}/24"
        (lab.state_dir / SEGMENT_FILE).write_text(json.dumps({"segment": self.name, "address": address}) + "\n")
        return address

    def leave(self, lab: "Lab") -> None:
        """Take the lab off (its veth goes with its namespace); the last one out removes the segment."""
        with self._locked():
            members = self._without_stale(self.members(), lab)
            number = members.pop(lab.name, None)
            if number is not None and netns_exists(self.netns):
                run("ip", "-n", self.netns, "link", "delete", f"lab{number}", check=False)
            if members:
                self._save(members)
            else:
                self.nfs_server().stop()
                if netns_exists(self.netns):
                    run("ip", "netns", "delete", self.netns)
                self.members_file.unlink(missing_ok=True)
                self.lock_file.unlink(missing_ok=True)  # still held: see _locked
        (lab.state_dir / SEGMENT_FILE).unlink(missing_ok=True)

    @staticmethod
    def _without_stale(members: dict[str, int], lab: "Lab") -> dict[str, int]:
        """Members whose lab namespace is gone (a lab removed behind our back) hold no address."""
        return {name: n for name, n in members.items() if name == lab.name or netns_exists(f"virtops-{name}")}

    def nfs_server(self) -> nfs.NfsServer:
        """The handbook's NFS server 192.168.0.254:/nfs on this segment (lab/nfs.py)."""
        return nfs.NfsServer(netns=self.netns, state=self.dir / f"{self.name}.nfs", probe_netns=self.netns,
                             device=SEGMENT_BRIDGE)

    def _start_nfs_server(self) -> None:
        """Every lab on a segment reaches one NFS server, so they share its export (netfs pools)."""
        server = self.nfs_server()
        if not server.running() and shutil.which("ganesha.nfsd"):
            server.start()

    def _free_number(self, members: dict[str, int]) -> int:
        used = set(members.values())
        for number in SEGMENT_HOSTS:
            if number not in used:
                return number
        raise VirtopsError(f"segment {self.name} is full ({len(SEGMENT_HOSTS)} labs); use another segment.")

    def _create(self) -> None:
        if not netns_exists(self.netns):
            run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        if run("ip", "-n", self.netns, "link", "show", SEGMENT_BRIDGE, check=False).returncode != 0:
            run("ip", "-n", self.netns, "link", "add", SEGMENT_BRIDGE, "type", "bridge")
        run("ip", "-n", self.netns, "link", "set", SEGMENT_BRIDGE, "up")
        # The segment's own NFS server answers on the bridge: its way back to the labs.
        run("ip", "-n", self.netns, "route", "replace", SEGMENT_NETWORK, "dev", SEGMENT_BRIDGE)

    def _plug(self, lab: "Lab", number: int) -> None:
        port = f"lab{number}"  # the bridge's port; lab names are too long for an interface name
        if run("ip", "-n", lab.netns, "link", "show", SEGMENT_DEVICE, check=False).returncode != 0:
            run("ip", "-n", self.netns, "link", "delete", port, check=False)  # a stale port of a crashed lab
            run("ip", "-n", lab.netns, "link", "add", SEGMENT_DEVICE, "type", "veth",
                "peer", "name", port, "netns", self.netns)
            run("ip", "-n", lab.netns, "addr", "add", f"{SEGMENT_PREFIX}{number}/24", "dev", SEGMENT_DEVICE)
        run("ip", "-n", self.netns, "link", "set", port, "master", SEGMENT_BRIDGE, "up")
        run("ip", "-n", lab.netns, "link", "set", SEGMENT_DEVICE, "up")
        run("ip", "-n", lab.netns, "route", "replace", f"{nfs.ADDRESS}/32", "dev", SEGMENT_DEVICE)

    def _save(self, members: dict[str, int]) -> None:
        temporary = self.members_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(members, sort_keys=True) + "\n")
        os.replace(temporary, self.members_file)

    @property
    def lock_file(self) -> Path:
        return self.dir / f"{self.name}.lock"

    @contextlib.contextmanager
    def _locked(self):
        """The segment's flock. The last lab out removes the lock file while holding it; whoever
        waited on that file then finds it gone from its path and locks the new one instead."""
        self.dir.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.lock_file, "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                current = os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(handle.fileno()).st_ino:
                break
            handle.close()
        with handle:
            yield


def _quietly(func, *args) -> None:
    try:
        func(*args)
    except (libvirt.libvirtError, OSError):
        pass


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def netns_pids(name: str) -> list[str]:
    return run("ip", "netns", "pids", name, check=False).stdout.split()


def kernel_has_nfs() -> bool:
    """Whether this kernel mounts NFS itself (built in, or as a module it can load)."""
    if any(line.split()[-1] in ("nfs", "nfs4") for line in Path("/proc/filesystems").read_text().splitlines()):
        return True
    modules = Path("/lib/modules", os.uname().release, "modules.dep")
    return modules.exists() and "kernel/fs/nfs/nfs.ko" in modules.read_text()


def is_mountpoint(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == target for line in mounts)


def seed_config(etc: Path) -> None:
    """Copy the packaged libvirt configuration (not the host's defined objects) and adapt it to a lab."""
    for conf in Path("/etc/libvirt").glob("*.conf"):
        shutil.copy2(conf, etc / conf.name)
    if Path("/etc/libvirt/nwfilter").is_dir():
        shutil.copytree("/etc/libvirt/nwfilter", etc / "nwfilter", dirs_exist_ok=True)
    networks = etc / "qemu" / "networks"
    (networks / "autostart").mkdir(parents=True, exist_ok=True)
    stock = Path("/usr/share/libvirt/networks/default.xml")
    if stock.exists():
        shutil.copy2(stock, networks / "default.xml")
        # Debian's postinst marks `default` autostart; a lab mirrors a fresh installation.
        (networks / "autostart" / "default.xml").symlink_to("/etc/libvirt/qemu/networks/default.xml")
    append_settings(etc / "qemu.conf", QEMU_CONF_OVERRIDES)
    append_settings(etc / "libvirtd.conf", LIBVIRTD_CONF_OVERRIDES)


def give_host_uuid(conf: Path) -> None:
    """Each lab is a host of its own to libvirt: without host_uuid every lab would report the
    machine's SMBIOS UUID, and libvirt refuses a migration between two hosts of one UUID."""
    if not any(line.startswith("host_uuid") for line in conf.read_text().splitlines()):
        append_settings(conf, {"host_uuid": f'"{uuid.uuid4()}"'})


def append_settings(conf: Path, settings: dict[str, str]) -> None:
    with conf.open("a") as out:
        out.write("\n# virtops lab host settings\n")
        for key, value in settings.items():
            out.write(f"{key} = {value}\n")


def list_labs(root: Path | None = None) -> list[LabStatus]:
    base = root or lab_root()
    if not base.is_dir():
        return []
    return [Lab(d.name, base).status() for d in sorted(base.iterdir()) if (d / MARKER).exists()]


def lab_reached_at(address: str, root: Path | None = None) -> Lab | None:
    """The running lab host that a client in this process's network namespace reaches at
    `address`: the lab whose outside namespace this is, at its uplink address (its remote_uri).
    Every lab's uplink has the same address, so the namespace tells which one it is."""
    if address != UPLINK_LAB_ADDRESS.split("/")[0]:
        return None
    here = os.stat("/proc/self/ns/net")
    for name in running_lab_names(root):
        lab = Lab(name, root)
        try:
            outside = os.stat(f"/run/netns/{lab.outside_netns}")
        except OSError:
            continue
        if (outside.st_dev, outside.st_ino) == (here.st_dev, here.st_ino):
            return lab
    return None


def running_lab_names(root: Path | None = None) -> list[str]:
    """The labs whose keeper and libvirtd run, from their pid files alone: unlike status(), this
    opens no connection, so a lab whose daemon hangs cannot hold it up."""
    base = root or lab_root()
    if not base.is_dir():
        return []
    labs = [Lab(d.name, base) for d in sorted(base.iterdir()) if (d / MARKER).exists() and is_lab_name(d.name)]
    return [lab.name for lab in labs if pid_alive(lab._pid("keeper")) and pid_alive(lab._pid("libvirtd"))]
