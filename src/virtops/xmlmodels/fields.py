"""A small declarative binding between libvirt XML and Python values: each field of an object is
declared once, and reading, writing, merging into a document someone else wrote, and the fast
listing rows all derive from that one declaration (after virt-manager's virtinst XMLProperty).

A model class wraps one lxml element and declares its fields in the order libvirt writes them:

    class Disk(XmlModel):
        TAG = "disk"
        type = Field("@type")
        format = Field("driver/@type")
        target = Field("target/@dev")
        readonly = Field("readonly", FLAG)

- Reading a field evaluates its path relative to the model's element: `a/b` is the text of
  child b of child a, `a/@x` an attribute, `@x` an attribute of the element itself.
- Setting a field creates what is missing, each new element placed where the declaration order
  (plus the class's ORDER for elements virtops does not model) says, not appended at the end.
- Setting None removes the attribute or element, and the elements the removal left empty.
- Setting a value equal to what the XML already says changes nothing, so a read-modify-write
  keeps what virsh or virt-manager wrote (an upper-case MAC, memory in MiB, netmask= instead
  of prefix=) for every field not changed; what no field declares is never touched.
- Children (disks, NICs, DHCP hosts) are lists of models declared the same way; Child is one
  child picked by a condition (the IPv4 <ip> of a network).
- A field whose value needs logic (a network's mode: no <forward> means isolated) declares a
  getter and setter on the field itself: still one declaration, one place in the order.

Plain Python only: listings read rows through this module without importing pydantic or lxml.
Reading works on the standard library's ElementTree elements as on lxml's (read.py parses
the listings' XML with it); writing needs lxml's (getparent, addnext), which doc.parse gives and
a new model makes, importing lxml then.
"""
from __future__ import annotations

import contextlib

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator
    from lxml import etree

def _lxml():
    """lxml.etree, imported when a document is made or written out, never for reading alone."""
    from lxml import etree

    return etree


# -- conversions ------------------------------------------------------------------------------


class Conv:
    """How a value is read from XML text and written back. `load` returns None for text the
    conversion cannot read: a foreign value virtops does not understand reads as absent."""

    def __init__(self, name: str, load: Callable[[str], Any], dump: Callable[[Any], str]):
        self.name, self.load, self.dump = name, load, dump

    def __repr__(self) -> str:
        return f"<Conv {self.name}>"


def _int(text: str) -> int | None:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _choice(true: str, false: str) -> Conv:
    return Conv(f"{true}/{false}", lambda text: {true: True, false: False}.get(text),
                lambda value: true if value else false)


STR = Conv("str", lambda text: text, str)
INT = Conv("int", _int, lambda value: str(int(value)))
YESNO = _choice("yes", "no")
ONOFF = _choice("on", "off")
MAC = Conv("mac", str.lower, lambda value: str(value).lower())
FLAG = Conv("flag", bool, bool)  # the element's presence: <readonly/>

# libvirt's size units (virScaleInteger): K, KiB = 1024; KB = 1000; b, bytes = 1.
UNITS = {"b": 1, "bytes": 1, "B": 1}
for _power, _letter in enumerate("KMGTPE", start=1):
    for _spelling in (_letter, _letter.lower(), f"{_letter}iB"):
        UNITS[_spelling] = 1024**_power
    UNITS[f"{_letter}B"] = 1000**_power


# -- what the test suite checks is exercised ----------------------------------------------------
# Every declared field registers here; while tracking is on (the golden-pair tests turn it on),
# a field that read a value or was written is recorded as exercised.
_DECLARED: list["Field"] = []
_tracking: set | None = None


@contextlib.contextmanager
def tracking() -> Iterator[set]:
    """Record, while the block runs, every field that read a value or was written."""
    global _tracking
    seen: set = set()
    previous, _tracking = _tracking, seen
    try:
        yield seen
    finally:
        _tracking = previous


def declared() -> list["Field"]:
    """Every field of every model class defined so far."""
    return list(_DECLARED)


# -- paths --------------------------------------------------------------------------------------
def _split(path: str) -> tuple[tuple[str, ...], str | None]:
    """('a', 'b'), 'x' for 'a/b/@x'; ('a', 'b'), None for 'a/b' (text); (), None for '.'."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    attr = parts.pop()[1:] if parts and parts[-1].startswith("@") else None
    return tuple(parts), attr


def _find(node: etree._Element, steps: tuple[str, ...], index: "_Index | None" = None) -> etree._Element | None:
    if index is not None:
        return index.find(node, steps)
    for tag in steps:
        node = node.find(tag)
        if node is None:
            return None
    return node


class _Index:
    """The first child of each tag, per element, found in one walk of its children: reading all
    the fields of an element (listings read thousands) costs one walk, not one search per field.
    Lives only while values() reads; nothing writes meanwhile."""

    __slots__ = ("children",)

    def __init__(self):
        self.children: dict = {}

    def find(self, node: etree._Element, steps: tuple[str, ...]) -> etree._Element | None:
        for tag in steps:
            children = self.children.get(node)
            if children is None:
                children = self.children[node] = {}
                for child in node:
                    children.setdefault(child.tag, child)
            node = children.get(tag)
            if node is None:
                return None
        return node


_PLAIN, _FLAG, _SIZE, _GENERAL = range(4)  # how row() reads a field


def _is_empty(node: etree._Element) -> bool:
    return len(node) == 0 and not node.attrib and not (node.text or "").strip()


# -- fields -------------------------------------------------------------------------------------
class Field:
    """One value of an object: its path, its conversion and (by declaration) its place in the
    element order. `get(model)` / `set(model, value)` replace the plain reading and writing
    for values that need logic; `path` still places the element and documents where it lives."""

    def __init__(self, path: str, conv: Conv = STR, *, get: Callable | None = None, set: Callable | None = None,
                 doc: str = "", carry: str | None = None, drop_element: bool = False):
        self.path = path
        self.steps, self.attr = _split(path)
        self.conv = conv
        self._get, self._set = get, set
        self.doc = doc
        # For an attribute that the element exists for (<domain name=...>): None removes the
        # element with its other attributes, which mean nothing without it.
        self.drop_element = drop_element
        # "Entry.field" of the spec schema that must carry this field, in the spec and in what
        # export writes; tests/unit/test_xml_golden.py holds each field marked so to that promise.
        self.carry = carry
        self.name = ""
        self.owner: type | None = None
        _DECLARED.append(self)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.owner = name, owner

    def __repr__(self) -> str:
        owner = self.owner.__name__ if self.owner else "?"
        return f"<{type(self).__name__} {owner}.{self.name} {self.path}>"

    # The element paths this field creates, for the order tables.
    def element_steps(self) -> tuple[str, ...]:
        return self.steps

    def __get__(self, model, owner=None):
        if model is None:
            return self
        value = self._get(model) if self._get else self.read(model.node, model._index)
        if _tracking is not None and value is not None and not (self.conv is FLAG and not value):
            _tracking.add(self)  # a flag that is absent read nothing
        return value

    def __set__(self, model, value) -> None:
        if self._set:
            if model._fresh or (self._get(model) if self._get else self.read(model.node)) != value:
                self._written()
                self._set(model, value)
            return
        self.write(model, value)

    def _written(self) -> None:
        """Record a write that changes the document (a write of what is there already is none)."""
        if _tracking is not None:
            _tracking.add(self)

    # -- plain reading and writing --------------------------------------------------------------
    def read(self, node: etree._Element, index: _Index | None = None):
        found = _find(node, self.steps, index)
        if self.conv is FLAG:
            return found is not None
        if found is None:
            return None
        text = found.get(self.attr) if self.attr else found.text
        return None if text is None else self.conv.load(text)

    def write(self, model: "XmlModel", value) -> None:
        if not model._fresh and self.read(model.node) == (self.normalize(value) if value is not None else None):
            return  # unchanged: keep the document's own spelling (a new element says it explicitly)
        self._written()
        if value is None or (self.conv is FLAG and not value):
            self.remove(model)
            return
        node = model.ensure(self.steps)
        if self.conv is FLAG:
            return
        text = self.conv.dump(value)
        if self.attr:
            node.set(self.attr, text)
        else:
            node.text = text

    def normalize(self, value):
        """The value as it would read back once written."""
        if self.conv is FLAG:
            return bool(value)
        return self.conv.load(self.conv.dump(value))

    def remove(self, model: "XmlModel") -> None:
        found = _find(model.node, self.steps)
        if found is None:
            return
        if self.attr and not (self.drop_element and found is not model.node):
            found.attrib.pop(self.attr, None)
        elif found is not model.node:
            found.getparent().remove(found)
            found = _find(model.node, self.steps[:-1])
        else:
            found.text = None
        model.prune(found)


class SizeField(Field):
    """A size in bytes, written in libvirt's <capacity unit='bytes'>N</capacity> form. Read in
    whatever unit the document gives (KiB when it gives none for memory, bytes for storage)."""

    def __init__(self, path: str, default_unit: str, write_unit: str, **kwargs):
        super().__init__(path, INT, **kwargs)
        self.default_unit, self.write_unit = default_unit, write_unit

    def read(self, node: etree._Element, index: _Index | None = None) -> int | None:
        found = _find(node, self.steps, index)
        return None if found is None else self.read_element(found)

    def read_element(self, found: etree._Element) -> int | None:
        """The size an element of this field's kind gives (for callers holding the element)."""
        if not (found.text or "").strip():
            return None
        number = _int(found.text.strip())
        factor = UNITS.get(found.get("unit", self.default_unit))
        return None if number is None or factor is None else number * factor

    def normalize(self, value):
        return int(value)

    def write(self, model: "XmlModel", value) -> None:
        if not model._fresh and self.read(model.node) == value:
            return
        self._written()
        if value is None:
            self.remove(model)
            return
        node = model.ensure(self.steps)
        factor = UNITS[self.write_unit]
        if value % factor:
            raise ValueError(f"{self.name}: {value} bytes is not a whole number of {self.write_unit}")
        node.text = str(value // factor)
        node.set("unit", self.write_unit)


class Children(Field):
    """A list of child objects at `path` (its last step is the child class's TAG). Reading gives
    a ChildList of models; setting a list of dicts makes the document hold exactly those: with
    `key` (a field of the child), children with the same key are updated in place, keeping
    what virtops does not model in them, others removed, new ones added after their siblings."""

    def __init__(self, child: type, path: str, key: str | None = None, **kwargs):
        super().__init__(path, **kwargs)
        self.child, self.key = child, key
        self.parent_steps, self.tag = self.steps[:-1], self.steps[-1]

    def read(self, node: etree._Element, index: _Index | None = None) -> list:
        parent = _find(node, self.parent_steps, index)
        return [] if parent is None else [self.child(found) for found in parent.findall(self.tag)]

    def __get__(self, model, owner=None):
        if model is None:
            return self
        found = ChildList(self, model)
        if _tracking is not None and len(found):
            _tracking.add(self)
        return found

    def __set__(self, model, items) -> None:
        children = ChildList(self, model)
        if items or len(children):
            self._written()
        children.replace(items or [])


class ChildList:
    """The children of one model at one Children field, as models. A view on the document."""

    def __init__(self, field: Children, model: "XmlModel"):
        self.field, self.model = field, model

    def nodes(self) -> list[etree._Element]:
        """The children's elements, without models around them (listings read thousands)."""
        parent = _find(self.model.node, self.field.parent_steps, self.model._index)
        return [] if parent is None else parent.findall(self.field.tag)

    def __iter__(self):
        for node in self.nodes():
            child = self.field.child(node)
            child._index = self.model._index  # a listing's read shares one index
            yield child

    def __len__(self) -> int:
        return len(self.nodes())

    def __getitem__(self, index: int) -> "XmlModel":
        return self.field.child(self.nodes()[index])

    def values(self) -> list[dict]:
        return [child.values() for child in self]

    def add(self, values: dict | None = None, /, **more) -> "XmlModel":
        """A new child after the existing ones of its kind, with these field values."""
        nodes = self.nodes()
        node = self.model.node.makeelement(self.field.tag, {})
        if nodes:
            nodes[-1].addnext(node)
        else:
            parent = self.model.ensure(self.field.parent_steps)
            self.model.insert(parent, node, self.field.parent_steps)
        child = self.field.child(node, fresh=True)
        child.update({**(values or {}), **more})
        child._fresh = False
        return child

    def remove(self, child: "XmlModel") -> None:
        parent = child.node.getparent()
        parent.remove(child.node)
        self.model.prune(parent)

    def clear(self) -> None:
        for child in list(self):
            self.remove(child)

    def replace(self, items: list) -> None:
        items = [item.values() if isinstance(item, XmlModel) else dict(item) for item in items]
        existing = list(self)
        if self.field.key is None:  # by position
            for child, values in zip(existing, items):
                child.update(values)
            for child in existing[len(items):]:
                self.remove(child)
            for values in items[len(existing):]:
                self.add(values)
            return
        key, key_field = self.field.key, self.field.child.fields()[self.field.key]
        wanted = {key_field.normalize(values[key]): values for values in items if values.get(key) is not None}
        # Children without the key (an IPv6 DHCP host names its client by DUID, not MAC) go by position.
        unkeyed = [values for values in items if values.get(key) is None]
        for child in existing:
            found = getattr(child, key)
            values = wanted.pop(found, None) if found is not None else (unkeyed.pop(0) if unkeyed else None)
            if values is None:
                self.remove(child)
            else:
                child.update(values)
        for values in [*wanted.values(), *unkeyed]:
            self.add(values)


class Child(Field):
    """One child object at `path`: the first one `where(model)` accepts. Setting a dict updates
    it (creating it with `create` values first when missing); setting None removes it."""

    def __init__(self, child: type, path: str, where: Callable[["XmlModel"], bool] | None = None,
                 create: dict | None = None, **kwargs):
        super().__init__(path, **kwargs)
        self.child, self.where, self.create = child, where, create or {}
        self.parent_steps, self.tag = self.steps[:-1], self.steps[-1]

    def read(self, node: etree._Element, index: _Index | None = None):
        parent = _find(node, self.parent_steps, index)
        for found in (parent.findall(self.tag) if parent is not None else []):
            child = self.child(found)
            if self.where is None or self.where(child):
                return child
        return None

    def __get__(self, model, owner=None):
        if model is None:
            return self
        value = self.read(model.node, model._index)
        if _tracking is not None and value is not None:
            _tracking.add(self)
        return value

    def __set__(self, model, values) -> None:
        current = self.read(model.node)
        if values is not None or current is not None:
            self._written()
        if values is None:
            if current is not None:
                parent = current.node.getparent()
                parent.remove(current.node)
                model.prune(parent)
            return
        if isinstance(values, XmlModel):
            values = values.values()
        if current is None:
            node = model.node.makeelement(self.tag, {})
            parent = model.ensure(self.parent_steps)
            model.insert(parent, node, self.parent_steps)
            current = self.child(node, fresh=True)
            current.update(self.create)
        current.update(values)
        current._fresh = False


# -- models -------------------------------------------------------------------------------------
class XmlModel:
    """An lxml element seen through declared fields. TAG is the element's name; ORDER names, per
    parent path ('' for the element itself, 'devices', 'os', ...), the order libvirt writes child
    elements in, including those no field declares, so that new elements land in place."""

    TAG = ""
    ORDER: dict[str, tuple[str, ...]] = {}
    _fields: dict[str, Field] = {}
    _order: dict[tuple[str, ...], list[str]] = {}
    _row_plans: dict = {}

    __slots__ = ("node", "_index", "_fresh")

    def __init__(self, node: etree._Element | None = None, fresh: bool | None = None):
        self.node = _lxml().Element(self.TAG) if node is None else node
        self._index: _Index | None = None
        # A new element says every value it is given, even one libvirt would assume anyway (an
        # IPv6 prefix of 64); an existing one keeps its spelling for values that do not change.
        self._fresh = node is None if fresh is None else fresh

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Field] = {}
        for klass in reversed(cls.__mro__):
            fields.update({name: value for name, value in vars(klass).items() if isinstance(value, Field)})
        cls._fields = fields
        order: dict[tuple[str, ...], list[str]] = {}
        for prefix, tags in cls.ORDER.items():
            order[_split(prefix)[0]] = list(tags)
        for field in fields.values():
            steps = field.element_steps()
            for depth, tag in enumerate(steps):
                known = order.setdefault(steps[:depth], [])
                if tag not in known:
                    known.append(tag)
        cls._order = order
        cls._row_plans = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_lxml().tostring(self.node, encoding='unicode')[:60]}>"

    @classmethod
    def fields(cls) -> dict[str, Field]:
        return cls._fields

    # -- values ---------------------------------------------------------------------------------
    def values(self, *names: str) -> dict:
        """The fields' values (all, or those named); child lists as lists of dicts."""
        own_index = self._index is None
        if own_index:
            self._index = _Index()
        try:
            result = {}
            for name in names or self._fields:
                value = getattr(self, name)
                if isinstance(value, (ChildList, XmlModel)):
                    value = value.values()
                result[name] = value
            return result
        finally:
            if own_index:
                self._index = None

    def first(self, *steps: str) -> etree._Element | None:
        """The element at these steps below this one (for the getters of logic fields)."""
        return _find(self.node, steps, self._index)

    @classmethod
    def row(cls, node: etree._Element, names: tuple[str, ...]) -> dict:
        """values(*names) of a node, the listings' reader: the element's children are walked once
        and a plain field is read straight from them, without a model or a descriptor call."""
        plan = cls._row_plans.get(names)
        if plan is None:
            plan = cls._row_plans[names] = [cls._row_step(name) for name in names]
        children: dict = {}
        for child in node:
            children.setdefault(child.tag, child)
        model = None
        result = {}
        for name, kind, first, rest, attr, load, field in plan:
            if kind == _GENERAL:  # logic fields and children: through a model sharing this walk
                if model is None:
                    model = cls(node)
                    model._index = _Index()
                    model._index.children[node] = children
                value = field._get(model) if field._get is not None else getattr(model, name)
                result[name] = value.values() if isinstance(value, (ChildList, XmlModel)) else value
                continue
            found = children.get(first) if first else node
            if rest and found is not None:
                found = _find(found, rest)
            if kind == _FLAG:
                value = found is not None
            elif found is None:
                value = None
            elif kind == _SIZE:
                value = field.read_element(found)
            else:
                value = found.get(attr) if attr else found.text
                if value is not None and load is not None:
                    value = load(value)
            result[name] = value
        if _tracking is not None:
            _tracking.update(cls._fields[name] for name, value in result.items() if value not in (None, False, []))
        return result

    @classmethod
    def child_nodes(cls, node: etree._Element, *names: str) -> dict[str, list[etree._Element]]:
        """The elements of these Children fields, each parent's children walked once (a listing
        reads the disks and NICs of thousands of domains)."""
        result: dict[str, list[etree._Element]] = {name: [] for name in names}
        by_parent: dict[tuple[str, ...], dict[str, str]] = {}
        for name in names:
            field = cls._fields[name]
            by_parent.setdefault(field.parent_steps, {})[field.tag] = name
        for steps, tags in by_parent.items():
            parent = _find(node, steps)
            for child in (parent if parent is not None else ()):
                name = tags.get(child.tag)
                if name is not None:
                    result[name].append(child)
        return result

    @classmethod
    def _row_step(cls, name: str) -> tuple:
        """How row() reads one field: (name, kind, first step, further steps, attribute,
        conversion, field), worked out once per listing rather than per element."""
        field = cls._fields[name]
        kind = (_GENERAL if field._get is not None or type(field) not in (Field, SizeField)
                else _SIZE if type(field) is SizeField else _FLAG if field.conv is FLAG else _PLAIN)
        steps = field.steps
        load = None if field.conv is STR else field.conv.load
        return (name, kind, steps[0] if steps else None, steps[1:], field.attr, load, field)

    def update(self, values: dict | None = None, /, **more) -> "XmlModel":
        """Set these fields, in declaration order (a logic field may rely on an earlier one)."""
        values = {**(values or {}), **more}
        unknown = set(values) - set(self._fields)
        if unknown:
            raise AttributeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        for name in self._fields:
            if name in values:
                setattr(self, name, values[name])
        return self

    # -- the document ---------------------------------------------------------------------------
    def ensure(self, steps: tuple[str, ...]) -> etree._Element:
        """The element at steps below this model's, creating what is missing in place."""
        node = self.node
        for depth, tag in enumerate(steps):
            found = node.find(tag)
            if found is None:
                found = node.makeelement(tag, {})
                self.insert(node, found, steps[:depth])
            node = found
        return node

    def insert(self, parent: etree._Element, child: etree._Element, prefix: tuple[str, ...]) -> None:
        """Place child among parent's children where the order of `prefix` puts its tag: after
        the last child that comes before it (or has its tag), else before the first that comes
        after it; appended when the order does not know it or its neighbours."""
        order = self._order.get(prefix, [])
        if child.tag not in order:
            parent.append(child)
            return
        rank = order.index(child.tag)
        ranks = [(order.index(n.tag) if isinstance(n.tag, str) and n.tag in order else None, n) for n in parent]
        before = [n for r, n in ranks if r is not None and r <= rank]
        if before:
            before[-1].addnext(child)
            return
        after = [n for r, n in ranks if r is not None]
        if after:
            after[0].addprevious(child)
        else:
            parent.append(child)

    def prune(self, node: etree._Element | None) -> None:
        """Remove node and its ancestors below this model's element while they are empty."""
        while node is not None and node is not self.node and _is_empty(node):
            parent = node.getparent()
            parent.remove(node)
            node = parent

    def to_string(self) -> str:
        return _lxml().tostring(self.node, pretty_print=True, encoding="unicode")
