"""What a disruptive action costs, told before it is taken: the running guests it cuts off and one
sentence for a person, computed by the object's own module from the same facts its guard refuses
on (a network's running NICs, a pool's running users, a volume's users), so a confirmation says
what the operation would refuse over, and asks for the option it would need."""
from __future__ import annotations

from virtops.base.errors import NeedsOption
from virtops.base.model import Model


class Way(Model):
    """A way out of a refusal as the REST API answers it and the console offers it (a button): the
    same request again with `option` set to `value`, and what that does in plain words."""

    option: str
    value: str | int | bool = True
    does: str


def ways_of(refusal: NeedsOption) -> list[Way]:
    return [Way(option=way.term.field, value=way.term.value, does=way.does) for way in refusal.ways]


class Impact(Model):
    action: str
    subject: str  # "network mynetwork", "volume test/test", "disk vdb of vm1"
    guests: list[str] = []  # the running guests that lose a device, their connection or their power
    cost: str  # one sentence
    option: str | None = None  # what the operation needs to go ahead ("force"); None: it needs nothing
    # The choices it would then still ask for (a pool's volumes: delete them too, or keep the data),
    # each the refusal's way out: the confirmation offers them in place of its one Confirm.
    ways: list[Way] = []
