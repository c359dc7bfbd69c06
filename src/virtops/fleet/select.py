"""-H SELECTOR: which hosts a fleet command asks.

    all            every registered host and every running lab host (what `host list` shows)
    NAME,NAME      registered hosts by name
    tag:TAG        the registered hosts carrying TAG
    lab:NAME       a lab host (running or not: one that is down is reported as such)

Terms are joined by commas and may mix; a host selected twice is asked once.
"""
from __future__ import annotations

import functools

from virtops.base.errors import InvalidInput, NotFound, command
from virtops.daemon import registry
from virtops.daemon.connection import is_host_name
from virtops.base.names import LAB_PREFIX, check_lab_term
from virtops.daemon.registry import RegisteredHost

TYPE_CHECKING = False  # not typing's: an -H listing starts without it
if TYPE_CHECKING:
    from typing import Callable

MAX_SELECTOR_CHARS = 4096
TAG_PREFIX = "tag:"
FORMS = "all, NAME[,NAME...], tag:TAG or lab:NAME"


def select(selector: str) -> list[RegisteredHost]:
    """The hosts a selector names, in its order (then the registry's); refused in one sentence."""
    if len(selector) > MAX_SELECTOR_CHARS:
        raise InvalidInput("selector", f"the selector is longer than {MAX_SELECTOR_CHARS} characters; use {FORMS}.")
    terms = [term.strip() for term in selector.split(",")]
    if not any(terms):
        raise InvalidInput("selector", f"no host selected; use {FORMS}.")
    chosen: dict[str, RegisteredHost] = {}
    known = functools.cache(registry.registered)  # read once, and only if a term needs it (lab:NAME does not)
    for term in terms:
        if not term:
            raise InvalidInput("selector", f"{selector!r} has an empty term; use {FORMS}.")
        for host in _hosts_of(term, known):
            chosen.setdefault(host.name, host)
    return list(chosen.values())


def every_host(known: Callable[[], list[RegisteredHost]] = registry.registered) -> list[RegisteredHost]:
    """The registered hosts, then the running lab hosts as lab:NAME: what `host list` and -H all show."""
    from virtops.daemon.connection import running_lab_names

    labs = [RegisteredHost(f"{LAB_PREFIX}{name}", f"{LAB_PREFIX}{name}", (), "lab") for name in running_lab_names()]
    return known() + labs


def _hosts_of(term: str, known: Callable[[], list[RegisteredHost]]) -> list[RegisteredHost]:
    if term == "all":
        hosts = every_host(known)
        if not hosts:
            raise InvalidInput("selector", "'all' selects no host: the registry is empty and no lab host runs; "
                                           f"add one{command('host add NAME URI', wrap=' with {}', elsewhere=' first')}.")
        return hosts
    if term.startswith(TAG_PREFIX):
        tag = registry.check_tag(term.removeprefix(TAG_PREFIX))
        hosts = [host for host in known() if tag in host.tags]
        if not hosts:
            raise InvalidInput("selector", f"no registered host carries the tag {tag!r}"
                                           f"{command('host list', wrap='; {} shows the tags', elsewhere='')}.")
        return hosts
    if term.startswith(LAB_PREFIX):
        return [RegisteredHost(check_lab_term(term, "selector"), term, (), "lab")]
    if not is_host_name(term):
        raise InvalidInput("selector", f"{term!r} is not a selector; use {FORMS} (a URI goes into the registry "
                                       f"first{command('host add NAME URI', wrap=': {}', elsewhere='')}).")
    try:
        return [registry.lookup(term, known())]
    except NotFound as err:
        raise InvalidInput("selector", err.text) from None
