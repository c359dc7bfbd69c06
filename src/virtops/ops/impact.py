"""What a disruptive action costs, told before it is taken: the running guests it cuts off and one
sentence for a person, computed by the object's own module from the same facts its guard refuses
on (a network's running NICs, a pool's running users, a volume's users), so a confirmation says
what the operation would refuse over, and asks for the option it would need."""
from __future__ import annotations

from virtops.base.model import Model


class Impact(Model):
    action: str
    subject: str  # "network mynetwork", "volume test/test", "disk vdb of vm1"
    guests: list[str] = []  # the running guests that lose a device, their connection or their power
    cost: str  # one sentence
    option: str | None = None  # what the operation needs to go ahead ("force"); None: it needs nothing
