"""A lab host's own sshd, so that it is reached over qemu+ssh:// as operators reach a real host.

Debian's sshd binary, run by us with a config file, host key and authorized_keys of the lab's own
(under STATE_DIR/ssh), listening only on the lab's uplink address inside its network namespace,
public keys only. It runs in the lab's mount namespace too, so a login sees the lab's
/run/libvirt: libvirt's remote side (virt-ssh-helper or nc) reaches the lab's daemon.

The outside namespace plays the operator's machine: its ssh client configuration is
/etc/netns/OUTSIDE/ssh/ (which `ip netns exec` binds over /etc/ssh), whose ssh_known_hosts holds the
lab's host key, so clients there verify the host (no no_verify) and never read or write the real
user's ~/.ssh/known_hosts. The client's key is STATE_DIR/ssh/id_ed25519, given by the URI's
`keyfile=`.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from virtops.base.errors import VirtopsError
from virtops.lab.netns import connect_inside
from virtops.lab.proc import command_line_names, pid_alive, run, wait_for_exit

if TYPE_CHECKING:
    from virtops.lab.labhost import Lab

SSHD = "/usr/sbin/sshd"  # re-executes itself, so an absolute path
SSH_PORT = 22
# A second port, as hosts that move ssh off 22 have: URIs with a port (qemu+ssh://root@ADDRESS:2222/)
# and the display's tunnel (`ssh -p`) are tested for real on it.
OTHER_SSH_PORT = 2222
PRIVSEP_DIR = Path("/run/sshd")  # sshd's empty chroot for its unprivileged child (Debian's own)
NETNS_ETC = Path("/etc/netns")
START_TIMEOUT_S = 15


def sshd_command(state_dir: Path) -> list[str]:
    """sshd with the lab's config; it detaches itself and writes its pid file; -E keeps its log in
    the lab's log folder."""
    return [SSHD, "-f", str(state_dir / "ssh" / "sshd_config"), "-E", str(state_dir / "log" / "sshd.log")]


class LabSshd:
    def __init__(self, lab: "Lab", address: str):
        self.lab, self.address = lab, address
        self.dir = lab.state_dir / "ssh"

    # -- paths and names ------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.dir / "sshd_config"  # as sshd_command names it

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        """The key a client in the outside namespace logs in with (as root)."""
        return self.dir / "id_ed25519"

    @property
    def pid_file(self) -> Path:
        return self.dir / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.lab.state_dir / "log" / "sshd.log"

    @property
    def client_etc(self) -> Path:
        """The outside namespace's /etc/ssh, as `ip netns exec` binds it."""
        return NETNS_ETC / self.lab.outside_netns / "ssh"

    @property
    def uri(self) -> str:
        return f"qemu+ssh://root@{self.address}/system?keyfile={self.client_key}"

    def uri_on(self, port: int) -> str:
        """The same URI with the port given (OTHER_SSH_PORT: the sshd's second port)."""
        return self.uri.replace(f"@{self.address}/", f"@{self.address}:{port}/", 1)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid_alive(pid) and command_line_names(pid, str(self.config))

    # -- start and stop -------------------------------------------------------------
    def start(self) -> None:
        """Start the lab's sshd (idempotent) and return once it accepts connections."""
        if self.running():
            return
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self._make_keys()
        self._write_config()
        self._write_client_config()
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        # The lab's keeper starts it inside the lab's namespaces (keeper.start_sshd) and reaps it.
        keeper = self.lab._pid("keeper")
        if not pid_alive(keeper):
            raise VirtopsError(f"lab host {self.lab.name} is not running; `virtops lab up {self.lab.name}` first.")
        if not catches(keeper, signal.SIGUSR2):  # the default action of SIGUSR2 would end it
            raise VirtopsError(f"lab host {self.lab.name} was started by an older virtops that cannot start its sshd; "
                               f"`virtops lab down {self.lab.name}` and up again with --ssh.")
        os.kill(keeper, signal.SIGUSR2)
        self._wait_until_listening()

    def stop(self) -> None:
        """Stop the sshd by its pid and remove the client's config (logins still open are processes of the
        lab's namespace: `lab down` ends them after this)."""
        pid = self.pid()
        if pid_alive(pid) and command_line_names(pid, str(self.config)):
            os.kill(pid, signal.SIGTERM)
            wait_for_exit(pid, 5)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_for_exit(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        for name in ("ssh_config", "ssh_known_hosts"):
            (self.client_etc / name).unlink(missing_ok=True)
        for folder in (self.client_etc, self.client_etc.parent, NETNS_ETC):
            try:
                folder.rmdir()  # only when empty: another lab's or the machine's own stay
            except OSError:
                break

    # -- steps ----------------------------------------------------------------------
    def _make_keys(self) -> None:
        for key, comment in ((self.host_key, f"virtops lab {self.lab.name} host key"),
                             (self.client_key, f"virtops lab {self.lab.name} client key")):
            if not key.exists():
                run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key))
        authorized = self.dir / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)

    def _write_config(self) -> None:
        lines = [f"# virtops lab {self.lab.name}: its own sshd (lab/sshd.py)"]
        # The lab's own address, nowhere else.
        lines += [f"ListenAddress {self.address}:{port}" for port in (SSH_PORT, OTHER_SSH_PORT)]
        settings = {
            "HostKey": str(self.host_key),
            "PidFile": str(self.pid_file),
            "AuthorizedKeysFile": str(self.dir / "authorized_keys"),
            "PermitRootLogin": "prohibit-password",
            "AllowUsers": "root",
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",  # no PAM session: keys only, and nothing of the real host's PAM stack
            # Our own files, made 0600 here; the lab root may lie under a world-writable /tmp
            # (VIRTOPS_LAB_ROOT), which StrictModes would take for someone else's.
            "StrictModes": "no",
            # `ssh -W 127.0.0.1:PORT` (the display's tunnel) is a local forward: to the lab's loopback only.
            "AllowTcpForwarding": "local",
            "PermitOpen": "127.0.0.1:*",
            "AllowAgentForwarding": "no",
            "X11Forwarding": "no",
            "PermitTunnel": "no",
            "PrintMotd": "no",
            "LogLevel": "VERBOSE",  # each connection with the port it came in on (what the tests count)
        }
        lines += [f"{key} {value}" for key, value in settings.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def _write_client_config(self) -> None:
        self.client_etc.mkdir(parents=True, exist_ok=True)
        host_key = self.host_key.with_suffix(".pub").read_text().split()
        # On another port than 22, ssh looks the host up as [ADDRESS]:PORT.
        names = f"{self.address},[{self.address}]:{OTHER_SSH_PORT}"
        (self.client_etc / "ssh_known_hosts").write_text(f"{names} {host_key[0]} {host_key[1]}\n")
        (self.client_etc / "ssh_config").write_text(
            f"# virtops lab {self.lab.name}: the ssh client of its outside namespace (lab/sshd.py)\n"
            "Host *\n"
            "    StrictHostKeyChecking yes\n"
            "    UserKnownHostsFile /dev/null\n"  # the lab's key only from ssh_known_hosts beside this file
        )

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                connect_inside(self.lab.netns, self.address, SSH_PORT, timeout_s=2).close()
                if self.running():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise VirtopsError(f"lab host {self.lab.name}: sshd does not accept connections ({self._last_log_line()}).")

    def _last_log_line(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            lines = []
        return f"last line of {self.log}: {lines[-1].strip()}" if lines else f"see {self.log}"


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for signal `signum` (SigCgt in /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
