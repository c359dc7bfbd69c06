"""Errors that virtops shows to people: one sentence, a field when there is one, an exit code."""
from __future__ import annotations

from virtops.base.binding import libvirt


# -- terms of a request, inside a sentence ----------------------------------------------------------
# The core names the terms of a request in its own words (`format`, `start`, `with_volumes`); each
# face words them its own way: the CLI as its options (--format qcow2, --no-start), the REST API as
# body fields ("format": "qcow2"), the spec as its keys (format: qcow2). A term written into a
# sentence with an f-string stays a term: it is a marker in the text (private-use characters, which
# repr() escapes, so no quoted value can forge one) that the error reads back into its parts.
_TERM_OPEN, _TERM_VALUE, _TERM_CLOSE = "\ue000", "\ue001", "\ue002"
_CLI_OPEN, _ELSEWHERE, _CLI_CLOSE = "\ue003", "\ue004", "\ue005"
_MARKERS = _TERM_OPEN + _TERM_VALUE + _TERM_CLOSE + _CLI_OPEN + _ELSEWHERE + _CLI_CLOSE
NO_VALUE = None  # a term without a value names the field itself ("leave target out")


class Term:
    """A field of the request named in a sentence, with the value to give it when there is one."""

    __slots__ = ("field", "value")

    def __init__(self, field: str, value: str | int | bool | None = NO_VALUE):
        self.field = field
        self.value = value

    def __str__(self) -> str:
        value = self.value
        code = "-" if value is None else "T" if value is True else "F" if value is False \
            else "i" if isinstance(value, int) else "s"
        text = "" if code in "-TF" else "".join(c for c in str(value) if c not in _MARKERS)
        return f"{_TERM_OPEN}{self.field}{_TERM_VALUE}{code}{text}{_TERM_CLOSE}"

    def __repr__(self) -> str:
        return f"term({self.field!r}{'' if self.value is None else f', {self.value!r}'})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Term) and (self.field, self.value) == (other.field, other.value)

    def __hash__(self) -> int:
        return hash((self.field, self.value))


def term(field: str, value: str | int | bool | None = NO_VALUE) -> Term:
    """`term("format", "qcow2")`, `term("start", False)`, `term("target")` inside a sentence."""
    return Term(field, value)


class ByFace:
    """A part of a sentence the command line words as a command to run (`virtops pool list --all`)
    and every other face its own way (`elsewhere`: the field and value, a plain sentence, or nothing):
    the web console and the REST API must not tell people to run a command they may not have."""

    __slots__ = ("cli", "elsewhere")

    def __init__(self, cli: list, elsewhere: list):
        self.cli = cli
        self.elsewhere = elsewhere


def by_face(cli: str, elsewhere: str = "") -> str:
    """Text (with terms) for the command line, and what the other faces say in its place."""
    return f"{_CLI_OPEN}{cli}{_ELSEWHERE}{elsewhere}{_CLI_CLOSE}"


def command(words: str, *terms: Term, elsewhere: str | None = None, wrap: str = "{}") -> str:
    """A virtops command as a hint: `command("pool set test", term("mode", "0711"))` is
    `virtops pool set test --mode 0711` on the command line (inside `wrap`, e.g. " ({})"); elsewhere
    its terms alone ("mode": "0711") unless `elsewhere` says what to say instead."""
    line = " ".join([f"virtops {words}", *map(str, terms)])
    return by_face(wrap.format(f"`{line}`"), " ".join(map(str, terms)) if elsewhere is None else elsewhere)


def parts_of(text: str) -> list:
    """The text, its terms and its per-face parts: str, Term and ByFace items. (Read by hand, not
    with re: a listing that fails at its connection words its sentence, and re would cost it 3 ms.)"""
    parts: list = []
    start = 0
    while True:
        at = min((found for found in (text.find(_TERM_OPEN, start), text.find(_CLI_OPEN, start)) if found >= 0),
                 default=-1)
        if at < 0:
            break
        item, end = _term_at(text, at) if text[at] == _TERM_OPEN else _by_face_at(text, at)
        if at > start:
            parts.append(text[start:at])
        if item is None:  # a stray marker is text
            item, end = text[at], at + 1
        parts.append(item)
        start = end
    if start < len(text):
        parts.append(text[start:])
    return parts


def _term_at(text: str, at: int) -> tuple[Term | None, int]:
    close = text.find(_TERM_CLOSE, at)
    split = text.find(_TERM_VALUE, at, close)
    if close < 0 or split < 0:
        return None, at
    field, code, raw = text[at + 1:split], text[split + 1:split + 2], text[split + 2:close]
    named = field[:1].islower() and field.isascii() and field.replace("_", "").isalnum()
    valued = code != "" and code in "-TFsi" and not any(marker in raw for marker in _MARKERS)
    if not (named and valued) or code == "i" and not raw.lstrip("-").isdigit():
        return None, at
    value = None if code == "-" else code == "T" if code in "TF" else int(raw) if code == "i" else raw
    return Term(field, value), close + 1


def _by_face_at(text: str, at: int) -> tuple[ByFace | None, int]:
    middle = text.find(_ELSEWHERE, at)
    close = text.find(_CLI_CLOSE, middle)
    if middle < 0 or close < 0 or _CLI_OPEN in text[at + 1:close]:
        return None, at
    return ByFace(parts_of(text[at + 1:middle]), parts_of(text[middle + 1:close])), close + 1


class Wording:
    """How a face words terms; this one is the core's own (the Python API, logs): keyword
    arguments as Python takes them (format='qcow2', force=True). The faces subclass it."""

    def field(self, name: str) -> str:
        """The name of a refused field at the head of a sentence ("target: ...")."""
        return name

    def term(self, item: Term) -> str:
        return item.field if item.value is None else f"{item.field}={item.value!r}"

    def commands(self) -> Wording | None:
        """The wording of hints to run a virtops command, or None: this face says what they
        say `elsewhere` instead."""
        return None

    def words(self, text: str) -> str:
        """The text with its terms in this face's words (a part left empty leaves no double space)."""
        return " ".join(self.parts(parts_of(text)).split())

    def parts(self, parts: list) -> str:
        out = []
        for part in parts:
            if isinstance(part, Term):
                out.append(self.term(part))
            elif isinstance(part, ByFace):
                cli = self.commands()
                out.append(cli.parts(part.cli) if cli is not None else self.parts(part.elsewhere))
            else:
                out.append(part)
        return "".join(out)


class CommandLineWording(Wording):
    """Terms as options of the command line: --format qcow2, --no-start, --with-volumes. The CLI
    refines it with the options of the command being run; the spec words its command hints so."""

    def flag(self, field: str, on: bool = True) -> str:
        flag = "--" + field.replace("_", "-")
        return flag if on else "--no-" + flag.removeprefix("--")

    def term(self, item: Term) -> str:
        if item.value is None or isinstance(item.value, bool):
            return self.flag(item.field, on=item.value is not False)
        return f"{self.flag(item.field)} {item.value}"

    def commands(self) -> Wording:
        return self


CORE_WORDING = Wording()


class VirtopsError(Exception):
    """A refusal or failure explained in one sentence. Exit code 1.

    `text` is the sentence as the core wrote it, with its terms (`term`, `command`); `message` and
    str() word them in the core's terms, `worded(face)` in a face's own."""

    exit_code = 1

    def __init__(self, message: str, *, field: str | None = None):
        self.text = " ".join(message.split())  # one line, whatever the underlying tool said
        self.field = field
        self.message = CORE_WORDING.words(self.text)
        super().__init__(self.message)
        # Where in the request the field is, e.g. ("disks", 1) for the second disk of a VM: each
        # face renders it in its own terms (the spec as vms[0].disks[1].target).
        self.location: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return self.message

    @property
    def sentence(self) -> str:
        """The text without the field it begins with ("target: ..."): what a face places itself."""
        return self.text.removeprefix(f"{self.field}: ") if self.field else self.text

    def worded(self, face: Wording, with_field: bool = True) -> str:
        """The sentence in a face's terms, beginning with the field in its terms when it has one."""
        sentence = face.words(self.sentence)
        if not with_field or not self.field or self.sentence == self.text:
            return sentence
        return f"{face.field(self.field)}: {sentence}"

    @property
    def terms(self) -> list[Term]:
        """The terms the sentence names, the command line's hints included."""
        found: list[Term] = []

        def collect(parts: list) -> None:
            for part in parts:
                if isinstance(part, Term):
                    found.append(part)
                elif isinstance(part, ByFace):
                    collect(part.cli)
                    collect(part.elsewhere)
        collect(parts_of(self.text))
        return found


class InvalidInput(VirtopsError):
    """The user gave a value that cannot be accepted; nothing was changed. `field` is the core's
    name of the field (`target`, `source_path`), never a face's spelling of it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", field=field)


class WayOut:
    """One way out of a refusal: the same request again with one option set (`term`: its field and
    value), and what taking it does in plain words ("delete its volumes too"), which a face can show
    as it is (the web console as a button). Never a face's spelling: no flag, no "pass ..."."""

    __slots__ = ("term", "does")

    def __init__(self, field: str, value: str | int | bool = True, does: str = "go ahead anyway"):
        self.term = Term(field, value)
        self.does = does

    def __repr__(self) -> str:
        return f"WayOut({self.term.field!r}, {self.term.value!r}, {self.does!r})"


class NeedsOption(VirtopsError):
    """Refused unless the caller gives an option of the operation (`force`, `remove_storage`): the
    sentence names it as a term, term(option, True), so each face words it its own way (the CLI as
    --force); the REST API answers the ways out too, and the web console offers each as a button.
    `ways`: when there is more than one way, or the option's value is not True, or taking it deserves
    words of its own; by default the one way `option`=True, "go ahead anyway"."""

    def __init__(self, message: str, option: str = "force", *, field: str | None = None,
                 ways: list[WayOut] | None = None):
        self.ways = ways or [WayOut(option)]
        self.option = self.ways[0].term.field
        super().__init__(message, field=field)


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
        super().__init__(errors[0].text)
        self.errors = errors
        self.message = "\n".join(err.message for err in errors)

    def __str__(self) -> str:
        return self.message


def text_of(err: VirtopsError) -> str:
    """An error's sentence(s) with their terms, on one line: for a text of the core that carries a
    refusal's words into a result (a move's reasons), worded later by the face that shows it."""
    return "; ".join(each.text for each in getattr(err, "errors", None) or [err])


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
