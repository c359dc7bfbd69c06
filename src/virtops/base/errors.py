"""Errors that virtops shows to people: one sentence, a field when there is one, an exit code."""
from __future__ import annotations

import contextlib

from virtops.base.binding import libvirt

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Iterator


class VirtopsError(Exception):
    """A refusal or failure explained in one sentence. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, field: str | None = None):
        message = " ".join(message.split())  # one line, whatever the underlying tool said
        super().__init__(message)
        self.message = message
        self.field = field
        # Where in the request the field is, e.g. ("disks", 1) for the second disk of a VM: each
        # face renders it in its own terms (the spec as vms[0].disks[1].target).
        self.location: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return self.message


class InvalidInput(VirtopsError):
    """The user gave a value that cannot be accepted; nothing was changed."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", field=field)


class NeedsOption(VirtopsError):
    """Refused unless the caller gives an option of the operation, named in the core's terms
    (`force`, `remove_storage`) where the template says {option}; each face words the option its
    own way (the CLI as --force), with `worded`."""

    def __init__(self, template: str, option: str = "force"):
        self.template = template
        self.option = option
        super().__init__(self.worded(option), field=option)

    def worded(self, option_text: str) -> str:
        return " ".join(self.template.replace("{option}", option_text).split())


class NotFound(VirtopsError):
    """An object the user named does not exist on the host."""


class HostUnreachable(VirtopsError):
    """No libvirt daemon answers at the URI."""


@contextlib.contextmanager
def located(*parts: str | int) -> Iterator[None]:
    """Errors raised inside are about the part `parts` of a request (e.g. "disks", 1)."""
    try:
        yield
    except VirtopsError as err:
        err.location = (*parts, *err.location)
        raise


class Refusals(VirtopsError):
    """Several refusals found at once (a plan checks everything before it reports): one line each."""

    def __init__(self, errors: list[VirtopsError]):
        super().__init__(errors[0].message)
        self.errors = errors
        self.message = "\n".join(err.message for err in errors)

    def __str__(self) -> str:
        return self.message


def one_sentence(text: str) -> str:
    """libvirt messages sometimes span lines; people get the first line, ending with a period."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else "unknown libvirt error"
    return first if first.endswith((".", "!", "?")) else first + "."


def from_libvirt(err: libvirt.libvirtError, doing: str | None = None) -> VirtopsError:
    message = one_sentence(err.get_error_message() or str(err))
    if doing:
        message = f"{doing} failed: {message}"
    if err.get_error_code() in NOT_FOUND_CODES:
        return NotFound(message)
    return VirtopsError(message)


NOT_FOUND_CODES = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
}


@contextlib.contextmanager
def libvirt_errors(doing: str | None = None) -> Iterator[None]:
    """Turn a libvirt error raised inside the block into a one-sentence VirtopsError."""
    try:
        yield
    except libvirt.libvirtError as err:
        raise from_libvirt(err, doing) from err
