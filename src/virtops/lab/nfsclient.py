"""The lab hosts' userspace NFS client: a FUSE file system over libnfs (NFSv3), installed as
/usr/sbin/mount.nfs inside a lab's own mount namespace when the kernel has no NFS client.

libvirt starts a netfs pool with `mount -t nfs HOST:/PATH TARGET -o nodev,nosuid,noexec`, which
execs this helper as `mount.nfs HOST:/PATH TARGET [-o OPTIONS]`. The helper checks the export
answers (one sentence and exit 32, as mount.nfs, within MOUNT_TIMEOUT_S if not), then serves the
FUSE file system from a process of its own, named HOST:/PATH in the mount table: that is what
libvirt looks for to consider the pool mounted. `umount TARGET` (pool stop) ends that process.

What it does not exercise: the kernel's NFS client (its caching, locking, attribute timeouts, NFSv4).
It implements what libvirt and QEMU use on a pool: attributes, directories, create, read,
write, truncate, fallocate (written as zeros: NFSv3 has no ALLOCATE), fsync, statfs, unlink,
rename, chmod, chown and times. It has no POSIX `lock` operation on purpose: the kernel then
keeps byte-range locks local, as QEMU's image locking needs (a stub returning ENOSYS makes QEMU
fail "Failed to lock byte 100"). Every request runs in one thread over one libnfs context, with a
timeout, so a server that goes away turns into EIO rather than a hang (NfsExport says how).

Run as: mount.nfs HOST:/PATH TARGET [-o OPTIONS]   (python -m virtops.lab.nfsclient ...)
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import time

NFS_TIMEOUT_MS = 5_000
MOUNT_TIMEOUT_S = 10
ZERO_CHUNK = 1 << 20
EXIT_MOUNT_FAILURE = 32  # mount(8)'s "mount failure"


class _Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
        "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class _StatVfs64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail",
        "f_fsid", "f_flag", "f_namemax")]


class _DirEntry(ctypes.Structure):
    pass


_DirEntry._fields_ = [("next", ctypes.POINTER(_DirEntry)), ("name", ctypes.c_char_p)]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


def _libnfs() -> ctypes.CDLL:
    lib = ctypes.CDLL("libnfs.so.13", use_errno=True)
    p, u64, i = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int
    signatures = {  # libnfs 4.0's synchronous API (Debian 12's libnfs13)
        "nfs_init_context": ([], p), "nfs_destroy_context": ([p], None), "nfs_get_error": ([p], ctypes.c_char_p),
        "nfs_set_timeout": ([p, i], None), "nfs_mount": ([p, ctypes.c_char_p, ctypes.c_char_p], i),
        "nfs_stat64": ([p, ctypes.c_char_p, ctypes.POINTER(_Stat64)], i),
        "nfs_statvfs64": ([p, ctypes.c_char_p, ctypes.POINTER(_StatVfs64)], i),
        "nfs_open": ([p, ctypes.c_char_p, i, ctypes.POINTER(p)], i),
        "nfs_create": ([p, ctypes.c_char_p, i, i, ctypes.POINTER(p)], i),
        "nfs_close": ([p, p], i), "nfs_fsync": ([p, p], i), "nfs_fstat64": ([p, p, ctypes.POINTER(_Stat64)], i),
        "nfs_pread": ([p, p, u64, u64, ctypes.c_char_p], i), "nfs_pwrite": ([p, p, u64, u64, ctypes.c_char_p], i),
        "nfs_ftruncate": ([p, p, u64], i), "nfs_truncate": ([p, ctypes.c_char_p, u64], i),
        "nfs_unlink": ([p, ctypes.c_char_p], i), "nfs_mkdir": ([p, ctypes.c_char_p], i),
        "nfs_rmdir": ([p, ctypes.c_char_p], i), "nfs_rename": ([p, ctypes.c_char_p, ctypes.c_char_p], i),
        "nfs_chmod": ([p, ctypes.c_char_p, i], i), "nfs_chown": ([p, ctypes.c_char_p, i, i], i),
        "nfs_utimes": ([p, ctypes.c_char_p, ctypes.POINTER(_Timeval)], i),
        "nfs_opendir": ([p, ctypes.c_char_p, ctypes.POINTER(p)], i),
        "nfs_readdir": ([p, p], ctypes.POINTER(_DirEntry)), "nfs_closedir": ([p, p], None),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype
    return lib


# What libnfs reports when the server went away (a dropped connection, an RPC timed out).
CONNECTION_ERRORS = {errno.EINTR, errno.ETIMEDOUT, errno.EPIPE, errno.ECONNRESET, errno.ECONNREFUSED,
                     errno.ENOTCONN, errno.EHOSTUNREACH, errno.ENETUNREACH}
RETRY_AFTER_S = 5


class OpenFile:
    """A file the kernel has open: its libnfs handle, re-opened by path after a reconnection."""

    def __init__(self, path: bytes, flags: int, handle, generation: int):
        self.path, self.flags, self.handle, self.generation = path, flags, handle, generation


class NfsExport:
    """One mounted export over one libnfs context; each call raises OSError(errno) on failure.

    When the server goes away, the call that noticed fails with EIO after the timeout; every call
    then fails with EIO at once, except one attempt to reconnect every RETRY_AFTER_S, so a pool
    refresh or a volume operation against a dead server ends in seconds, and the mount recovers
    (re-opening open files by path) when the server comes back."""

    def __init__(self, server: str, export: str, timeout_ms: int = NFS_TIMEOUT_MS):
        self.lib = _libnfs()
        self.server, self.export, self.timeout_ms = server.encode(), export.encode(), timeout_ms
        self.context = None
        self.generation = 0
        self.down_since: float | None = None
        self._connect()

    def _connect(self) -> None:
        context = self.lib.nfs_init_context()
        if not context:
            raise OSError(errno.ENOMEM, "cannot create an NFS context")
        self.lib.nfs_set_timeout(context, self.timeout_ms)
        result = self.lib.nfs_mount(context, self.server, self.export)
        if result < 0:
            message = (self.lib.nfs_get_error(context) or b"").decode(errors="replace")
            self.lib.nfs_destroy_context(context)
            raise OSError(-result, message or os.strerror(-result))
        self.close()
        self.context, self.generation, self.down_since = context, self.generation + 1, None

    def _ready(self) -> None:
        if self.down_since is None:
            return
        if time.monotonic() - self.down_since < RETRY_AFTER_S:
            raise OSError(errno.EIO, "the NFS server does not answer")
        try:
            self._connect()
        except OSError:
            self.down_since = time.monotonic()
            raise OSError(errno.EIO, "the NFS server does not answer") from None

    def _check(self, result: int) -> int:
        if result < 0:
            if -result in CONNECTION_ERRORS:
                self.down_since = time.monotonic()
                raise OSError(errno.EIO, "the NFS server does not answer")
            message = (self.lib.nfs_get_error(self.context) or b"").decode(errors="replace")
            raise OSError(-result, message or os.strerror(-result))
        return result

    def close(self) -> None:
        if self.context:
            self.lib.nfs_destroy_context(self.context)
            self.context = None

    def call(self, name: str, *args) -> int:
        """A libnfs call taking the context first; OpenFile arguments become their handles."""
        self._ready()
        args = tuple(self._handle(arg) if isinstance(arg, OpenFile) else arg for arg in args)
        return self._check(getattr(self.lib, "nfs_" + name)(self.context, *args))

    def _handle(self, file: OpenFile):
        if file.generation != self.generation:  # opened over a connection that is gone
            handle = ctypes.c_void_p()
            flags = file.flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC)
            self._check(self.lib.nfs_open(self.context, file.path, flags, ctypes.byref(handle)))
            file.handle, file.generation = handle, self.generation
        return file.handle

    def stat(self, path: bytes, file: OpenFile | None = None) -> _Stat64:
        st = _Stat64()
        if file is not None:
            self.call("fstat64", file, ctypes.byref(st))
        else:
            self.call("stat64", path, ctypes.byref(st))
        return st

    def statvfs(self, path: bytes) -> _StatVfs64:
        st = _StatVfs64()
        self.call("statvfs64", path, ctypes.byref(st))
        return st

    def open(self, path: bytes, flags: int) -> OpenFile:
        handle = ctypes.c_void_p()
        self.call("open", path, flags & ~os.O_CREAT, ctypes.byref(handle))
        return OpenFile(path, flags, handle, self.generation)

    def create(self, path: bytes, flags: int, mode: int) -> OpenFile:
        handle = ctypes.c_void_p()
        self.call("create", path, flags & (os.O_EXCL | os.O_TRUNC | os.O_SYNC), mode, ctypes.byref(handle))
        return OpenFile(path, flags, handle, self.generation)

    def release(self, file: OpenFile) -> None:
        if file.generation == self.generation and self.down_since is None:
            self.call("close", file)

    def pread(self, file: OpenFile, offset: int, size: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        count = self.call("pread", file, offset, size, buffer)
        return buffer.raw[:count]

    def pwrite(self, file: OpenFile, offset: int, data: bytes) -> int:
        written = 0
        while written < len(data):
            chunk = data[written:]
            written += self.call("pwrite", file, offset + written, len(chunk), chunk)
        return written

    def listdir(self, path: bytes) -> list[str]:
        directory = ctypes.c_void_p()
        self.call("opendir", path, ctypes.byref(directory))
        names = []
        try:
            while True:
                entry = self.lib.nfs_readdir(self.context, directory)
                if not entry:
                    return names
                names.append(entry.contents.name.decode(errors="surrogateescape"))
        finally:
            self.lib.nfs_closedir(self.context, directory)


def _operations():
    """The FUSE operations class (mfusepy is imported only where a mount is served)."""
    import mfusepy

    class NfsFuse(mfusepy.Operations):
        use_ns = True

        def __init__(self, export: NfsExport):
            self.export = export
            self.handles: dict[int, OpenFile] = {}
            self.next_handle = 1

        @staticmethod
        def _b(path: str) -> bytes:
            return path.encode(errors="surrogateescape")

        def _keep(self, file: OpenFile) -> int:
            number, self.next_handle = self.next_handle, self.next_handle + 1
            self.handles[number] = file
            return number

        def getattr(self, path, fh=None):
            st = self.export.stat(self._b(path), self.handles.get(fh) if fh else None)
            return {"st_mode": st.mode, "st_nlink": st.nlink, "st_uid": st.uid, "st_gid": st.gid,
                    "st_size": st.size, "st_blocks": st.blocks, "st_blksize": st.blksize, "st_ino": st.ino,
                    "st_atime": st.atime * 10**9 + st.atime_nsec, "st_mtime": st.mtime * 10**9 + st.mtime_nsec,
                    "st_ctime": st.ctime * 10**9 + st.ctime_nsec}

        def readdir(self, path, fh):
            return self.export.listdir(self._b(path))

        def statfs(self, path):
            st = self.export.statvfs(self._b(path))
            return {name: getattr(st, name) for name, _ in _StatVfs64._fields_ if name not in ("f_fsid", "f_flag")}

        def open(self, path, flags):
            return self._keep(self.export.open(self._b(path), flags))

        def create(self, path, mode, flags=os.O_RDWR):
            return self._keep(self.export.create(self._b(path), flags, stat.S_IMODE(mode)))

        def read(self, path, size, offset, fh):
            return self.export.pread(self.handles[fh], offset, size)

        def write(self, path, data, offset, fh):
            return self.export.pwrite(self.handles[fh], offset, data)

        def truncate(self, path, length, fh=None):
            if fh:
                self.export.call("ftruncate", self.handles[fh], length)
            else:
                self.export.call("truncate", self._b(path), length)

        def fallocate(self, path, mode, offset, size, fh):
            if mode:  # FALLOC_FL_KEEP_SIZE, PUNCH_HOLE, ...: NFSv3 has no way to do them
                raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
            file = self.handles[fh]
            sparse = self.export.stat(b"", file).blocks == 0
            for position in range(offset, offset + size, ZERO_CHUNK):
                length = min(ZERO_CHUNK, offset + size - position)
                # NFSv3 has no ALLOCATE and no way to find holes: zeros are written where the file
                # reads as zeros (all of it when nothing is allocated), so no data changes.
                if sparse or not any(self.export.pread(file, position, length)):
                    self.export.pwrite(file, position, bytes(length))

        def fsync(self, path, datasync, fh):
            self.export.call("fsync", self.handles[fh])

        def flush(self, path, fh):
            return 0  # writes are synchronous RPCs: nothing is buffered here

        def release(self, path, fh):
            file = self.handles.pop(fh, None)
            if file is not None:
                self.export.release(file)

        def unlink(self, path):
            self.export.call("unlink", self._b(path))

        def mkdir(self, path, mode):
            self.export.call("mkdir", self._b(path))
            self.export.call("chmod", self._b(path), stat.S_IMODE(mode))

        def rmdir(self, path):
            self.export.call("rmdir", self._b(path))

        def rename(self, old, new):
            self.export.call("rename", self._b(old), self._b(new))

        def chmod(self, path, mode):
            self.export.call("chmod", self._b(path), stat.S_IMODE(mode))

        def chown(self, path, uid, gid):
            st = self.export.stat(self._b(path))
            self.export.call("chown", self._b(path), st.uid if uid == 0xFFFFFFFF else uid,
                             st.gid if gid == 0xFFFFFFFF else gid)

        def utimens(self, path, times=None):
            now = time.time_ns()
            atime, mtime = times or (now, now)
            values = (_Timeval * 2)(*(_Timeval(t // 10**9, (t % 10**9) // 1000) for t in (atime, mtime)))
            self.export.call("utimes", self._b(path), values)

        def destroy(self, path):
            self.export.close()

    return NfsFuse


def parse_arguments(argv: list[str]) -> tuple[str, str, str]:
    """mount.nfs's calling convention: SPEC DIR [-sfnvN] [-o OPTIONS]; returns server, export, dir."""
    if len(argv) < 2 or ":" not in argv[0]:
        raise SystemExit("usage: mount.nfs HOST:/PATH DIRECTORY [-o OPTIONS]")
    server, export = argv[0].split(":", 1)
    if not server or not export.startswith("/"):
        raise SystemExit(f"mount.nfs: {argv[0]!r} is not HOST:/PATH")
    return server, export, argv[1]


def is_mounted(source: str, target: str) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            after = fields[fields.index("-") + 1:]
            if fields[4] == target and len(after) > 1 and after[1] == source:
                return True
    return False


def main(argv: list[str]) -> int:
    server, export, target = parse_arguments(argv)
    source = f"{server}:{export}"
    target = os.path.realpath(target)
    try:  # fail here, in the foreground, when the server does not answer
        NfsExport(server, export, timeout_ms=MOUNT_TIMEOUT_S * 1000).close()
    except OSError as error:
        print(f"mount.nfs: {source}: {error.strerror or os.strerror(error.errno)}", file=sys.stderr)
        return EXIT_MOUNT_FAILURE
    child = os.fork()
    if child == 0:
        _serve(server, export, source, target)
        os._exit(0)
    deadline = time.monotonic() + MOUNT_TIMEOUT_S
    while time.monotonic() < deadline:
        if is_mounted(source, target):
            return 0
        finished, status = os.waitpid(child, os.WNOHANG)
        if finished:
            print(f"mount.nfs: {source} on {target}: the FUSE client exited ({os.waitstatus_to_exitcode(status)})",
                  file=sys.stderr)
            return EXIT_MOUNT_FAILURE
        time.sleep(0.05)
    print(f"mount.nfs: {source} on {target}: not mounted after {MOUNT_TIMEOUT_S} s", file=sys.stderr)
    return EXIT_MOUNT_FAILURE


def _serve(server: str, export: str, source: str, target: str) -> None:
    """The FUSE server process: its own session, its output to the lab's log, until unmounted."""
    import mfusepy

    os.setsid()
    log_path = "/var/log/libvirt/nfs-client.log"
    log = os.open(log_path if os.path.isdir(os.path.dirname(log_path)) else os.devnull,
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, replacement in ((0, null), (1, log), (2, log)):
        os.dup2(replacement, fd)
    export_handle = NfsExport(server, export)
    mfusepy.FUSE(_operations()(export_handle), target, foreground=True, nothreads=True, fsname=source,
                 subtype="nfs", allow_other=True, default_permissions=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
