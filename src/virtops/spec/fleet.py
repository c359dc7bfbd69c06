"""One spec for the fleet: `hosts: {NAME: {pools, networks, vms}}`, or one host's spec applied to
every host -H selects. `plan` asks every host at once and reports every host's refusals; `apply`
takes every host's lock first, plans all of them, and changes nothing anywhere unless every plan
is clean; then it applies host by host in parallel, each host re-checking under its lock."""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

from virtops.base.errors import InvalidInput, NotFound, Refusals, VirtopsError
from virtops.daemon.connection import resolve_uri
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import Gathered, gather_each
from virtops.fleet.select import select
from virtops.spec.document import SPEC_WORDING, FleetSpec, LoadedFleet, LoadedSpec
from virtops.base.hostlock import host_lock, lent_to_this_thread
from virtops.spec.plan import APPLY_WAIT_S, ApplyResult, Plan, apply, export, make_plan, refuse_blocked


@dataclass
class Target:
    """One host of a fleet spec and its part of the file."""
    host: RegisteredHost
    spec: LoadedSpec


def targets(loaded: LoadedSpec | LoadedFleet, selector: str | None) -> list[Target]:
    """The hosts a spec is for: a fleet spec's hosts (those -H selects, when given), or every host
    -H selects for one host's spec."""
    if isinstance(loaded, LoadedSpec):
        return [Target(host, loaded) for host in select(selector or "all")]
    chosen = [Target(_registered(name, part), part) for name, part in loaded.hosts.items()]
    if selector is None:
        return chosen
    wanted = {host.name for host in select(selector)}
    absent = sorted(wanted - set(loaded.hosts))
    if absent:
        raise InvalidInput("selector", f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not among the hosts "
                                 f"of {loaded.file} ({', '.join(loaded.hosts)}); select among those.")
    return [target for target in chosen if target.host.name in wanted]


def _registered(name: str, part: LoadedSpec) -> RegisteredHost:
    try:
        return select(name)[0]
    except (InvalidInput, NotFound) as err:
        raise part.error((), err.worded(SPEC_WORDING)) from None


class FleetRefused(Refusals):
    """Some hosts cannot be planned or applied: one line per problem, and nothing was changed anywhere."""

    def __init__(self, errors: list[VirtopsError]):
        super().__init__(errors + [VirtopsError("nothing was changed on any host.")])


@dataclass
class FleetPlan:
    gathered: Gathered[Plan]

    @property
    def plans(self) -> list[tuple[str, Plan]]:
        return [(answer.host.name, answer.value) for answer in self.gathered.answers if answer.ok]

    def refusal(self) -> FleetRefused | None:
        errors = [VirtopsError(f"host {answer.host.name}: {line}") for answer in self.gathered.failures
                  for line in answer.error.splitlines()]
        return FleetRefused(errors) if errors else None

    def as_dict(self) -> dict:
        return {"hosts": {name: plan.as_dict() for name, plan in self.plans},
                "errors": {a.host.name: a.error for a in self.gathered.failures}}


def plan_fleet(chosen: list[Target], prune: bool = False) -> FleetPlan:
    """Every host's plan, asked at once; a host that does not answer, or whose plan is refused,
    is a failure of its own (FleetPlan.refusal), never a reason to hold up the others."""
    parts = {target.host.name: target.spec for target in chosen}
    return FleetPlan(gather_each([target.host for target in chosen],
                                 lambda registered, host: make_plan(host, parts[registered.name], prune)))


def apply_fleet(chosen: list[Target], yes: bool = False, prune: bool = False,
                progress: Callable[[str, str], None] | None = None,
                on_plan: Callable[[FleetPlan], None] | None = None) -> Gathered[ApplyResult]:
    """Under every host's lock: plan all, refuse before any change if one host cannot be planned,
    has an impossible step or needs --yes; then apply every host at once. What one host's apply
    did or why it stopped is its answer (the others go on: their plans were clean)."""
    parts = {target.host.name: target.spec for target in chosen}
    with ExitStack() as locks:
        for target in chosen:
            locks.enter_context(host_lock(resolve_uri(target.host.uri), "apply", wait_s=APPLY_WAIT_S))
        planned = plan_fleet(chosen, prune)
        if on_plan:
            on_plan(planned)
        refused = planned.refusal() or _blocked(planned, yes)
        if refused:
            raise refused

        def apply_one(registered: RegisteredHost, host) -> ApplyResult:
            shown = (lambda label: progress(registered.name, label)) if progress else None
            with lent_to_this_thread(host.uri):  # this thread acts under the lock taken above
                return apply(host, parts[registered.name], yes, prune, progress=shown, locked=True)

        return gather_each([target.host for target in chosen], apply_one)


def _blocked(planned: FleetPlan, yes: bool) -> FleetRefused | None:
    errors = []
    for name, plan in planned.plans:
        try:
            refuse_blocked(plan, yes)
        except VirtopsError as err:
            errors.append(VirtopsError(f"host {name}: {err.message}"))
    return FleetRefused(errors) if errors else None


def export_fleet(hosts: list[RegisteredHost]) -> tuple[FleetSpec, list[str], Gathered]:
    """Every host that answers, as one fleet spec; the warnings prefixed by their host."""
    gathered = gather_each(hosts, lambda _registered, host: export(host))
    specs, warnings = {}, []
    for answer in gathered.answers:
        if answer.ok:
            spec, notes = answer.value
            specs[answer.host.name] = spec
            warnings += [f"host {answer.host.name}: {note}" for note in notes]
    return FleetSpec(hosts=specs), warnings, gathered
