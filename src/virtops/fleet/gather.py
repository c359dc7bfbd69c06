"""Asking many hosts at once: a thread per host, one connection each, and a bound on the wait.

Three things bound how long one host can hold up the answer:
- the connect: libvirt's open runs with a deadline (CONNECT_TIMEOUT_S), because a daemon that
  accepts the connection and never replies (stopped, swapped out, wedged) makes it wait for ever;
- libvirt's keepalive (KEEPALIVE): a daemon that falls silent in the middle of a call is dropped
  after interval x (count + 1) seconds, and the call fails;
- a last deadline for the whole host (DEADLINE_S), for anything the two above miss: the host's
  thread is then left behind. Threads are daemon threads, so none of them keeps the process alive.
A slow host that still answers is waited for (up to DEADLINE_S): slow is not down.
"""
from __future__ import annotations

import os
import threading
import time

from virtops.base.binding import libvirt
from virtops.base.errors import VirtopsError, from_libvirt
from virtops.daemon.registry import RegisteredHost
from virtops.host import Host

CONNECT_TIMEOUT_S = 5.0
KEEPALIVE = (2, 2)  # interval (s), count: a silent daemon is dropped after about 6 s
DEADLINE_S = 120.0

TYPE_CHECKING = False  # not typing's: an -H listing starts without it (docs/architecture.md, Start-up)
if TYPE_CHECKING:
    from typing import Any, Callable, ContextManager, Iterator, TypeVar

    T = TypeVar("T")
    Lease = Callable[[RegisteredHost], ContextManager[Host]]  # lends an open Host of a long-lived face's own


class Answer:
    """What one host answered, or in one sentence why it did not (Answer[T]: its value a T). A plain
    class: dataclasses (with inspect) and typing's Generic would cost every -H listing start-up."""
    __slots__ = ("host", "value", "error", "failure", "seconds")
    __class_getitem__ = classmethod(lambda cls, _item: cls)

    def __init__(self, host: RegisteredHost, value: T | None = None, error: str | None = None, seconds: float = 0.0):
        self.host = host
        self.value = value
        self.error = error  # in the core's terms; `failure` is the refusal itself, for a face to word
        self.failure: VirtopsError | None = None
        self.seconds = seconds

    @property
    def ok(self) -> bool:
        return self.error is None


class Gathered:
    """Every host's Answer, in the order asked (Gathered[T]: their values T)."""
    __slots__ = ("answers",)
    __class_getitem__ = classmethod(lambda cls, _item: cls)

    def __init__(self, answers: list[Answer[T]]):
        self.answers = answers

    def rows(self) -> Iterator[tuple[str, Any]]:
        """(host name, item) for every item of every host that answered with a list, host by host."""
        for answer in self.answers:
            if answer.ok:
                for item in answer.value or []:
                    yield answer.host.name, item

    @property
    def failures(self) -> list[Answer[T]]:
        return [answer for answer in self.answers if not answer.ok]


def deadline_s() -> float:
    """$VIRTOPS_FLEET_DEADLINE overrides DEADLINE_S (seconds)."""
    try:
        return max(1.0, float(os.environ.get("VIRTOPS_FLEET_DEADLINE", DEADLINE_S)))
    except ValueError:
        return DEADLINE_S


def open_host(host: RegisteredHost) -> Host:
    """A Host for a fleet: bounded connect, quick keepalive (which needs libvirt's event loop)."""
    opened = Host(host.uri)
    opened.connection.event_loop = True
    opened.connection.connect_timeout = CONNECT_TIMEOUT_S
    opened.connection.keepalive = KEEPALIVE
    return opened


def gather(hosts: list[RegisteredHost], work: Callable[[Host], T], deadline: float | None = None,
           pool: Callable[[RegisteredHost], Host] | None = None, lease: Lease | None = None) -> Gathered[T]:
    """work(host) on every host at once, each in its own thread on its own connection; the answers
    in the order of `hosts`. Returns by the deadline whatever the hosts do. A long-lived face passes
    `pool`, which hands out its open Host per host (made with open_host), or `lease`, which lends
    one for the work's time (the web console: one call at a time on each connection); those stay
    open; without either, each host's connection is opened for this call and closed after it."""
    return gather_each(hosts, lambda _registered, host: work(host), deadline, pool, lease)


def gather_each(hosts: list[RegisteredHost], work: Callable[[RegisteredHost, Host], T],
                deadline: float | None = None, pool: Callable[[RegisteredHost], Host] | None = None,
                lease: Lease | None = None) -> Gathered[T]:
    """gather() for work that differs per host: work(registered host, its open Host)."""
    answers = [Answer(host) for host in hosts]
    finished = [threading.Event() for _ in hosts]
    started = time.monotonic()

    def ask(index: int) -> None:
        answer = answers[index]
        try:
            if lease is not None:
                with lease(answer.host) as lent:
                    answer.value = work(answer.host, lent)
            else:
                answer.value = work(answer.host, pool(answer.host)) if pool else _ask(answer.host, work)
        except VirtopsError as err:
            answer.error, answer.failure = err.message, err
        except libvirt.libvirtError as err:  # a call the core does not wrap: libvirt's sentence
            answer.error = from_libvirt(err).message
        except Exception as err:  # noqa: BLE001 - one host's failure is its answer, not the fleet's
            answer.error = f"{type(err).__name__}: {err}"
        answer.seconds = round(time.monotonic() - started, 3)
        finished[index].set()

    for index, host in enumerate(hosts):
        threading.Thread(target=ask, args=(index,), name=f"fleet {host.name}", daemon=True).start()
    end = started + (deadline_s() if deadline is None else deadline)
    for index, done in enumerate(finished):
        if not done.wait(max(0.0, end - time.monotonic())):
            late = Answer(answers[index].host, seconds=round(time.monotonic() - started, 3))
            late.error = f"did not answer within {end - started:g} s."
            answers[index] = late  # the thread may still write to the old answer: it is no longer read
    return Gathered(answers)


def _ask(host: RegisteredHost, work: Callable[[RegisteredHost, Host], T]) -> T:
    opened = open_host(host)
    try:
        return work(host, opened)
    finally:
        opened.close()
