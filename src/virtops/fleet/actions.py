"""Actions on many VMs: `vm start|shutdown|destroy NAME...` on every selected host that has them, and
the web console's bulk start, shutdown and delete of the VMs selected on one host's list."""
from __future__ import annotations

from dataclasses import dataclass

import libvirt

from virtops.base.errors import InvalidInput, VirtopsError
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import Gathered, gather

VM_ACTIONS = ("start", "shutdown", "destroy")
BULK_ACTIONS = (*VM_ACTIONS, "delete")


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
        return [(result.vm, result.error) for result in each_vm(host, action, [n for n in wanted if n in present])]

    gathered = gather(hosts, on_host)
    outcomes = [Outcome(host, name, action, error) for host, (name, error) in gathered.rows()]
    found = {outcome.vm for outcome in outcomes}
    return ActionReport(outcomes, [name for name in wanted if name not in found], gathered)


@dataclass
class VmResult:
    """One VM's part of a bulk action: what was done, or the core's sentence why not."""
    vm: str
    done: str | None = None
    error: str | None = None  # in the core's terms; `failure` is the refusal itself, for a face to word
    failure: VirtopsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        return {"name": self.vm, "ok": self.ok, "done": self.done, "error": self.error}


def each_vm(host, action: str, names: list[str], remove_storage: bool = False) -> list[VmResult]:
    """The action on each named VM of one host, one after the other, each under the core's own rules
    (a VM that is not there, one already running, a running one to delete: each gets its sentence,
    and the others go on). Delete keeps the VMs' volumes unless remove_storage, and never stops a
    running VM: that stays the single delete's explicit force."""
    if action not in BULK_ACTIONS:
        raise InvalidInput("action", f"{action!r} is no bulk action; give one of {', '.join(BULK_ACTIONS)}.")
    results = []
    for name in dict.fromkeys(names):
        try:
            results.append(VmResult(name, done=_act(host, action, name, remove_storage)))
        except VirtopsError as err:
            results.append(VmResult(name, error=err.message, failure=err))
        except libvirt.libvirtError as err:
            results.append(VmResult(name, error=err.get_error_message()))
        except ValueError:  # libvirt-python refuses a name with a NUL byte before asking the daemon
            results.append(VmResult(name, error=f"{name!r} is not a VM name: it holds a NUL byte."))
    return results


DONE = {"start": "started", "shutdown": "asked to shut down", "destroy": "forced off"}


def _act(host, action: str, name: str, remove_storage: bool) -> str:
    if action != "delete":
        getattr(host.vms, action)(name)
        return DONE[action]
    removed = host.vms.delete(name, remove_storage=remove_storage).removed_volumes
    return f"deleted with its volumes {', '.join(removed)}" if removed else "deleted; its volumes stay"
