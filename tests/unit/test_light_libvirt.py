"""base/light_libvirt.py is libvirt.py's few methods the listings call, over libvirtmod: every name
it has is libvirt.py's, with libvirt.py's value, and each method answers as libvirt.py's does
(libvirt's test driver, whose every connection starts from the same objects)."""
from __future__ import annotations

import inspect
import subprocess
import sys

import libvirt
import pytest

from virtops.base import light_libvirt as light

URI = "test:///default"
CLASSES = ("virConnect", "virNetwork", "virStoragePool", "virStorageVol", "virDomain")


def test_every_constant_is_libvirts_with_its_value():
    constants = {name: value for name, value in vars(light).items() if name.startswith("VIR_")}
    assert constants and all(getattr(libvirt, name) == value for name, value in constants.items()), \
        {name: (value, getattr(libvirt, name, None)) for name, value in constants.items()}


def test_every_method_is_libvirts_and_calls_the_same_c_function():
    for class_name in CLASSES:
        ours, theirs = getattr(light, class_name), getattr(libvirt, class_name)
        for name, method in vars(ours).items():
            if name.startswith("_") or not callable(method):
                continue
            assert hasattr(theirs, name), f"{class_name}.{name} is not libvirt.py's"
            c_name = getattr(method, "__name__", name)
            if c_name.startswith("vir"):  # made by _method: libvirt.py's method calls the same C function
                assert f"libvirtmod.{c_name}(" in inspect.getsource(getattr(theirs, name)), f"{class_name}.{name}"
    for name in ("open", "openAuth", "registerErrorHandler", "virEventRegisterDefaultImpl", "virEventRunDefaultImpl"):
        assert callable(getattr(libvirt, name)) and callable(getattr(light, name))


def _answers(binding) -> dict:
    """What each light method gives on the test driver's stock objects, in plain values."""
    conn = binding.open(URI)
    net = conn.networkLookupByName("default")
    pool = conn.storagePoolLookupByName("default-pool")
    dom = conn.lookupByName("test")
    stats = conn.getAllDomainStats(binding.VIR_DOMAIN_STATS_STATE)
    answers = {
        "networks": [(n.name(), n.UUIDString(), n.isActive(), n.isPersistent(), n.autostart())
                     for n in conn.listAllNetworks()],
        "active networks": [n.name() for n in conn.listAllNetworks(binding.VIR_CONNECT_LIST_NETWORKS_ACTIVE)],
        "network xml": (net.XMLDesc(), net.XMLDesc(0)),
        "pools": [(p.name(), p.isActive(), p.isPersistent(), p.autostart(), p.info(), p.numOfVolumes())
                  for p in conn.listAllStoragePools()],
        "pool xml": (pool.XMLDesc(), pool.XMLDesc(0)),
        "volumes": [(v.name(), v.XMLDesc(), v.XMLDesc(0)) for v in pool.listAllVolumes()],
        "domains": [(d.name(), d.ID(), d.UUIDString(), d.isActive(), d.isPersistent(), d.autostart(), d.state(), d.state(0))
                    for d in conn.listAllDomains()],
        "domain xml": (dom.XMLDesc(), dom.XMLDesc(0), dom.XMLDesc(binding.VIR_DOMAIN_XML_INACTIVE)),
        "stats": [(d.name(), values) for d, values in stats],
        "listed stats": [(d.name(), values) for d, values in
                         conn.domainListGetStats([d for d, _v in stats], binding.VIR_DOMAIN_STATS_STATE)],
        "host": (conn.getInfo(), conn.getHostname(), conn.getType(), conn.getLibVersion(), conn.getVersion(),
                 conn.getFreeMemory(), conn.isAlive(), conn.getCapabilities()),
    }
    for call in (lambda: conn.networkLookupByName("nosuch"), lambda: pool.storageVolLookupByName("nosuch"),
                 lambda: conn.lookupByName("nosuch"), lambda: conn.storagePoolLookupByName("nosuch"),
                 lambda: net.DHCPLeases(), lambda: conn.getCPUStats(binding.VIR_NODE_CPU_STATS_ALL_CPUS),
                 lambda: conn.getMemoryStats(binding.VIR_NODE_MEMORY_STATS_ALL_CELLS),
                 lambda: conn.getDomainCapabilities(None, "x86_64", None, "kvm")):
        try:
            answers.setdefault("calls", []).append(("answered", call()))
        except binding.libvirtError as err:
            answers.setdefault("calls", []).append(("refused", err.get_error_code(), err.get_error_message(),
                                                    err.get_error_domain(), str(err)))
    conn.close()
    return answers


def test_each_method_answers_as_libvirts_does():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    ours, theirs = _answers(light), _answers(libvirt)
    assert ours == theirs
    assert ("refused", libvirt.VIR_ERR_NO_NETWORK) == ours["calls"][0][:2]


def test_a_method_takes_libvirts_arguments_and_no_more():
    conn = light.open(URI)
    with pytest.raises(TypeError):
        conn.listAllNetworks(0, 0)
    with pytest.raises(TypeError):
        conn.getCPUStats()  # cpuNum has no default, as in libvirt.py
    conn.close()


def _modules_after(setup: str) -> list[str]:
    code = (f"import sys\n{setup}\n"
            "from virtops.ops import rows, vmrows\n"
            "from virtops.daemon import facts\n"
            "print(sorted(m for m in ('libvirt', 'virtops.base.light_libvirt') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout)


def test_the_binding_is_chosen_once_per_process():
    assert _modules_after("") == ["libvirt"]
    assert _modules_after("from virtops.base.binding import use_light_binding\n"
                          "assert use_light_binding()") == ["virtops.base.light_libvirt"]
    # once libvirt.py is there (anything imported it), the process keeps it: one libvirtError
    assert _modules_after("import libvirt\nfrom virtops.base.binding import use_light_binding\n"
                          "assert not use_light_binding()") == ["libvirt"]
    assert _modules_after("from virtops.base.binding import libvirt, use_light_binding\n"
                          "assert not use_light_binding()") == ["libvirt"]


def test_a_daemon_lost_mid_listing_is_one_sentence_with_either_binding():
    """cli/output.run_guarded says a libvirt error of the remote protocol (the daemon went away
    mid-call) in one sentence: the light binding's libvirtError too."""
    code = ("import sys\n"
            "from virtops.base.binding import use_light_binding\n"
            "assert use_light_binding()\n"
            "from virtops.base.binding import libvirt\n"
            "from virtops.base import errors\n"
            "from virtops.cli.output import run_guarded\n"
            "err = libvirt.libvirtError.__new__(libvirt.libvirtError)\n"
            "err.err = (1, libvirt.VIR_FROM_RPC, 'End of file while reading data', 2, None, None, None, -1, -1)\n"
            "def command():\n"
            "    raise err\n"
            "sys.exit(run_guarded(command))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("error: End of file while reading data: the libvirt daemon went away in the middle of "
                           "this command; run the same command again once it answers, to finish the job.\n")
