"""Errors that virtops shows to people: one sentence, a field when there is one, an exit code."""
from __future__ import annotations

from virtops.base.binding import libvirt


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


class located:
    """Errors raised inside the block are about the part `parts` of a request (e.g. "disks", 1).
    (Here and in libvirt_errors, a class rather than contextlib.contextmanager: contextlib, with
    the collections and functools it imports, is 3 ms of a listing's start-up.)"""

    def __init__(self, *parts: str | int):
        self.parts = parts

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind, err, _traceback) -> bool:
        if isinstance(err, VirtopsError):
            err.location = (*self.parts, *err.location)
        return False


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


class libvirt_errors:
    """Turn a libvirt error raised inside the block into a one-sentence VirtopsError."""

    def __init__(self, doing: str | None = None):
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind, err, _traceback) -> bool:
        if isinstance(err, libvirt.libvirtError):
            raise from_libvirt(err, self.doing) from err
        return False
