"""Which layer of libvirt-python the core calls, chosen once per process.

libvirt-python is two layers: its C extension, `libvirtmod`, which calls libvirt, and `libvirt.py`,
which wraps each C call in a method and raises libvirtError when it fails. Importing libvirt.py
costs a listing about 12 ms here (its own 9,000 lines, 4 ms, and the `typing` it imports, 8 ms):
most of what a listing costs beyond virsh (docs/architecture.md, "Start-up"). So the process of a
listing or info command on one host (cli.main through cli/quick.py) asks for base/light_libvirt.py,
the few methods the listings call, making the same C calls as libvirt.py does. Every other
process (other commands, the web console, the Python API, the tests) gets libvirt.py.

The core imports the chosen one as `from virtops.base.binding import libvirt` and uses it as the
module `libvirt`. Mixing the two in one process would not do (each raises its own libvirtError),
so the choice is made when the core first asks for it, and kept."""
from __future__ import annotations

import sys

_light_wanted = False


def use_light_binding() -> bool:
    """Ask for light_libvirt.py before the core is imported; True if it is the one this process
    gets (nothing asked for libvirt yet, and nothing imported libvirt.py)."""
    global _light_wanted
    if "libvirt" not in globals() and "libvirt" not in sys.modules:
        _light_wanted = True
    return is_light()


def is_light() -> bool:
    """Whether this process calls light_libvirt.py (or will, once the core asks)."""
    module = globals().get("libvirt")
    return _light_wanted if module is None else module.__name__ == "virtops.base.light_libvirt"


def chosen():
    """The binding this process calls, if it chose one; else libvirt.py if anything imported it."""
    return globals().get("libvirt") or sys.modules.get("libvirt")


def __getattr__(name: str):
    if name != "libvirt":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _light_wanted and "libvirt" not in sys.modules:
        from virtops.base import light_libvirt as module
    else:
        import libvirt as module
    globals()["libvirt"] = module  # kept: the next `from ... import libvirt` finds it here
    return module
