"""Fleet actions on VMs: `vm start|shutdown|destroy NAME...` on every selected host that has them."""
from __future__ import annotations

from dataclasses import dataclass

import libvirt

from virtops.base.errors import VirtopsError
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import Gathered, gather

VM_ACTIONS = ("start", "shutdown", "destroy")


@dataclass
class Outcome:
    """What happened to one VM on one host: done, or the core's sentence why not."""
    host: str
    vm: str
    action: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        return {"host": self.host, "vm": self.vm, "action": self.action, "ok": self.ok, "error": self.error}


@dataclass
class ActionReport:
    outcomes: list[Outcome]
    missing: list[str]  # VMs on none of the hosts that answered
    gathered: Gathered

    @property
    def ok(self) -> bool:
        return not self.missing and not self.gathered.failures and all(o.ok for o in self.outcomes)


def vm_action(hosts: list[RegisteredHost], action: str, names: list[str]) -> ActionReport:
    """The action on each named VM wherever it is among the hosts (on all of them that have it),
    every host at once; on one host, VM after VM."""
    if action not in VM_ACTIONS:
        raise ValueError(f"no fleet action {action!r}")
    wanted = list(dict.fromkeys(names))

    def on_host(host) -> list[tuple[str, str | None]]:
        present = {dom.name() for dom in host.conn.listAllDomains()}
        done = []
        for name in (n for n in wanted if n in present):
            try:
                getattr(host.vms, action)(name)
                done.append((name, None))
            except VirtopsError as err:
                done.append((name, err.message))
            except libvirt.libvirtError as err:
                done.append((name, err.get_error_message()))
        return done

    gathered = gather(hosts, on_host)
    outcomes = [Outcome(host, name, action, error) for host, (name, error) in gathered.rows()]
    found = {outcome.vm for outcome in outcomes}
    return ActionReport(outcomes, [name for name in wanted if name not in found], gathered)
