"""The file system behind :class:`~crosswatch.testing.FoldingFS`: FUSE requests in,
replies out, on a backing directory whose names it folds as APFS does.

No I/O on ``/dev/fuse`` here: :meth:`Server.handle` takes one request's bytes and
returns the reply's, so it can be tested without a mount.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _fuse_abi as abi

MAX_WRITE = 128 * 1024
_AT_FDCWD = -100


def fold(name: bytes) -> str | bytes:
    """The key two names share when APFS takes them for one: case folded, in NFD.

    A name that is not UTF-8 is its own key, compared byte for byte.
    """
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return name
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())


@dataclass
class _Node:
    """One kernel inode: a backing entry (a file: as one spelling of its name reached it)."""

    nodeid: int
    key: tuple[Any, ...]
    kind: int  # stat.S_IFMT of the backing entry
    paths: list[bytes] = field(default_factory=list)  # backing paths, latest first
    nlookup: int = 0
    last: os.stat_result | None = None  # for a GETATTR once it is removed (still open)


class Server:
    """Answers FUSE requests on a backing directory; no I/O on ``/dev/fuse`` here.

    Nodes: a directory, and a file named as stored, has one node (a file's shared
    by its hard links); a file named in another spelling that folds to it gets a
    node of its own for that spelling. The kernel thus sees two inodes for files
    ``a`` and ``A`` and passes a case-only rename on (for one inode it would do
    nothing), while a directory stays one inode, so that a watch on it hears what
    is done in it through any spelling.
    """

    def __init__(self, backing: bytes) -> None:
        self.backing = backing
        st = os.lstat(backing)
        root = _Node(abi.ROOT_ID, (st.st_dev, st.st_ino), stat.S_IFDIR, [backing], 1)
        self._nodes: dict[int, _Node] = {abi.ROOT_ID: root}
        self._keys: dict[tuple[Any, ...], int] = {root.key: abi.ROOT_ID}
        self._next_node = abi.ROOT_ID + 1
        self._files: dict[int, int] = {}  # fh -> backing descriptor
        self._file_nodes: dict[int, int] = {}  # fh -> nodeid it was opened on
        self._dirs: dict[int, list[tuple[int, int, bytes]]] = {}  # fh -> (ino, type, name)
        self._next_fh = 1
        self._folds: dict[bytes, str | bytes] = {}  # fold() of names seen, bounded
        self.initialized = threading.Event()
        self.destroyed = False
        self._libc: Any = ctypes.CDLL(None, use_errno=True)
        self._ops: dict[int, Callable[[abi.Request], bytes | None]] = {
            abi.INIT: self._init, abi.DESTROY: self._destroy,
            abi.LOOKUP: self._lookup, abi.FORGET: self._forget,
            abi.BATCH_FORGET: self._batch_forget, abi.INTERRUPT: lambda r: None,
            abi.GETATTR: self._getattr, abi.SETATTR: self._setattr,
            abi.READLINK: self._readlink, abi.SYMLINK: self._symlink, abi.MKNOD: self._mknod,
            abi.MKDIR: self._mkdir, abi.UNLINK: self._unlink, abi.RMDIR: self._rmdir,
            abi.RENAME: self._rename, abi.RENAME2: self._rename2, abi.LINK: self._link,
            abi.OPEN: self._open, abi.CREATE: self._create, abi.READ: self._read,
            abi.WRITE: self._write, abi.FLUSH: lambda r: b"", abi.FSYNC: self._fsync,
            abi.RELEASE: self._release, abi.OPENDIR: self._opendir,
            abi.READDIR: self._readdir, abi.RELEASEDIR: self._releasedir,
            abi.FSYNCDIR: lambda r: b"", abi.STATFS: self._statfs, abi.ACCESS: self._access,
        }

    # ------------------------------------------------------------ dispatch

    def handle(self, buf: bytes) -> bytes | None:
        """The reply to one request (None where none is due); never raises."""
        try:
            req = abi.parse_request(buf)
        except abi.ProtocolError:
            unique = abi.unique_of(buf)
            return None if unique is None else abi.reply(unique, errno.EIO)
        op = self._ops.get(req.opcode)
        if op is None:
            return None if req.opcode in abi.NO_REPLY else abi.reply(req.unique, errno.ENOSYS)
        try:
            payload = op(req)
        except OSError as exc:
            payload, error = b"", exc.errno or errno.EIO
        except Exception:  # a bug or a malformed request: the caller gets EIO, we go on
            payload, error = b"", errno.EIO
        else:
            if payload is None:
                return None
            error = 0
        if req.opcode in abi.NO_REPLY:
            return None
        return abi.reply(req.unique, error, payload if not error else b"")

    def close(self) -> None:
        """Close every backing descriptor still open."""
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        self._file_nodes.clear()
        self._dirs.clear()

    # ------------------------------------------------------------ names and nodes

    def _path(self, nodeid: int) -> bytes:
        node = self._nodes.get(nodeid)
        if node is None or not node.paths:
            raise OSError(errno.ENOENT, "no such node")
        return node.paths[0]

    def _find(self, directory: bytes, name: bytes) -> tuple[bytes, os.stat_result] | None:
        """The stored spelling in ``directory`` that ``name`` names, and its lstat."""
        if b"/" in name or name in (b".", b".."):
            raise OSError(errno.EINVAL, "not a name")
        try:
            return name, os.lstat(os.path.join(directory, name))
        except FileNotFoundError:
            pass
        key = self._fold(name)
        if isinstance(key, bytes):
            return None
        for stored in os.listdir(directory):
            if self._fold(stored) == key:
                try:
                    return stored, os.lstat(os.path.join(directory, stored))
                except FileNotFoundError:
                    return None
        return None

    def _fold(self, name: bytes) -> str | bytes:
        key = self._folds.get(name)
        if key is None:
            if len(self._folds) > 100_000:
                self._folds.clear()
            key = self._folds[name] = fold(name)
        return key

    def _entry(self, parent: int, requested: bytes, stored: bytes, st: os.stat_result) -> bytes:
        """Count a lookup of the node for ``stored``, as ``requested`` reached it."""
        path = os.path.join(self._nodes[parent].paths[0], stored)
        key: tuple[Any, ...] = (st.st_dev, st.st_ino)
        if requested != stored and not stat.S_ISDIR(st.st_mode):
            key += (parent, requested)
        node = self._nodes.get(self._keys.get(key, 0))
        if node is None or not node.paths or node.kind != stat.S_IFMT(st.st_mode):
            node = _Node(self._next_node, key, stat.S_IFMT(st.st_mode))
            self._next_node += 1
            self._nodes[node.nodeid] = node
            self._keys[key] = node.nodeid
        node.paths = [path, *(p for p in node.paths if p != path)][:8]
        node.nlookup += 1
        node.last = st
        return abi.entry_out(node.nodeid, st)

    def _moved(self, pairs: dict[bytes, bytes]) -> None:
        """Backing paths (and everything below them) now elsewhere: src -> dst."""
        for node in self._nodes.values():
            out = []
            for p in node.paths:
                for src, dst in pairs.items():
                    if p == src or p.startswith(src + b"/"):
                        p = dst + p[len(src):]
                        break
                out.append(p)
            node.paths = out

    def _gone(self, path: bytes) -> None:
        """A backing path (and everything below it) no longer exists."""
        below = path + b"/"
        for node in self._nodes.values():
            if any(p == path or p.startswith(below) for p in node.paths):
                node.paths = [p for p in node.paths if p != path and not p.startswith(below)]

    def _fresh(self, req: abi.Request, name: bytes) -> bytes:
        """The backing path for a new entry ``name``; EEXIST if a folded one is there."""
        directory = self._path(req.nodeid)
        if self._find(directory, name) is not None:
            raise OSError(errno.EEXIST, "exists (names fold)")
        return os.path.join(directory, name)

    def _made(self, req: abi.Request, name: bytes, path: bytes, mode: int | None) -> bytes:
        """Finish a creation: exact mode and the caller's ownership, then the entry."""
        if mode is not None:
            os.chmod(path, mode & 0o7777)  # the kernel applied the caller's umask
        if (req.uid, req.gid) != (os.geteuid(), os.getegid()):
            os.chown(path, req.uid, req.gid, follow_symlinks=False)
        return self._entry(req.nodeid, name, name, os.lstat(path))

    # ------------------------------------------------------------ operations

    def _init(self, req: abi.Request) -> bytes:
        (major, minor, readahead, flags), _ = abi.take(abi.INIT_IN, req.body)
        if major != abi.MAJOR:  # the kernel then offers the major we name
            return abi.INIT_OUT.pack(abi.MAJOR, abi.MINOR, 0, 0, 0, 0, 0, 0, 0, 0)
        self.initialized.set()
        return abi.INIT_OUT.pack(abi.MAJOR, min(minor, abi.MINOR), readahead,
                                 flags & abi.FUSE_BIG_WRITES, 16, 12, MAX_WRITE, 1, 0, 0)

    def _destroy(self, req: abi.Request) -> bytes:
        self.destroyed = True
        return b""

    def _lookup(self, req: abi.Request) -> bytes:
        (name,) = abi.names(req.body, 1)
        found = self._find(self._path(req.nodeid), name)
        if found is None:
            raise OSError(errno.ENOENT, "no such entry")
        return self._entry(req.nodeid, name, *found)

    def _forget_one(self, nodeid: int, count: int) -> None:
        node = self._nodes.get(nodeid)
        if node is None or nodeid == abi.ROOT_ID:
            return
        node.nlookup -= count
        if node.nlookup <= 0:
            del self._nodes[nodeid]
            if self._keys.get(node.key) == nodeid:
                del self._keys[node.key]

    def _forget(self, req: abi.Request) -> None:
        (count,), _ = abi.take(abi.FORGET_IN, req.body)
        self._forget_one(req.nodeid, count)

    def _batch_forget(self, req: abi.Request) -> None:
        (count, _), rest = abi.take(abi.BATCH_FORGET_IN, req.body)
        for _i in range(count):
            (nodeid, n), rest = abi.take(abi.FORGET_ONE, rest)
            self._forget_one(nodeid, n)

    def _stat(self, req: abi.Request, fh: int | None) -> os.stat_result:
        fd = self._files.get(fh) if fh is not None else None
        return os.fstat(fd) if fd is not None else os.lstat(self._path(req.nodeid))

    def _getattr(self, req: abi.Request) -> bytes:
        (flags, _, fh), _ = abi.take(abi.GETATTR_IN, req.body)
        node = self._nodes.get(req.nodeid)
        by_fh = flags & abi.FUSE_GETATTR_FH and fh in self._files
        if not by_fh and node is not None and not node.paths:  # removed, yet still open?
            fh = next((h for h, n in self._file_nodes.items() if n == req.nodeid), -1)
            by_fh = fh in self._files
            if not by_fh and node.last is not None:
                return abi.attr_out(node.last, nlink=0)  # a directory: as it last was
        st = self._stat(req, fh if by_fh else None)
        if node is not None:
            node.last = st
        return abi.attr_out(st)

    def _setattr(self, req: abi.Request) -> bytes:
        values, _ = abi.take(abi.SETATTR_IN, req.body)
        valid, _, fh, size, _, atime, mtime, _, atime_ns, mtime_ns, _, mode, _, uid, gid, _ = values
        path = self._path(req.nodeid)
        fd = self._files.get(fh) if valid & abi.FATTR_FH else None
        target: int | bytes = fd if fd is not None else path
        if valid & abi.FATTR_MODE and self._nodes[req.nodeid].kind != stat.S_IFLNK:
            os.chmod(target, mode & 0o7777)
        if valid & (abi.FATTR_UID | abi.FATTR_GID):
            os.chown(path, uid if valid & abi.FATTR_UID else -1,
                     gid if valid & abi.FATTR_GID else -1, follow_symlinks=False)
        if valid & abi.FATTR_SIZE:
            os.truncate(target, size)
        if valid & (abi.FATTR_ATIME | abi.FATTR_MTIME):
            st, now = os.lstat(path), time.time_ns()
            times = []
            for bit, now_bit, sec, nsec, old in (
                (abi.FATTR_ATIME, abi.FATTR_ATIME_NOW, atime, atime_ns, st.st_atime_ns),
                (abi.FATTR_MTIME, abi.FATTR_MTIME_NOW, mtime, mtime_ns, st.st_mtime_ns),
            ):
                given = now if valid & now_bit else sec * 10**9 + nsec
                times.append(given if valid & bit else old)
            os.utime(path, ns=(times[0], times[1]), follow_symlinks=False)
        return abi.attr_out(self._stat(req, fh if fd is not None else None))

    def _readlink(self, req: abi.Request) -> bytes:
        return os.readlink(self._path(req.nodeid))

    def _symlink(self, req: abi.Request) -> bytes:
        name, target = abi.names(req.body, 2)
        path = self._fresh(req, name)
        os.symlink(target, path)
        return self._made(req, name, path, None)

    def _mknod(self, req: abi.Request) -> bytes:
        (mode, rdev, _, _), rest = abi.take(abi.MKNOD_IN, req.body)
        (name,) = abi.names(rest, 1)
        path = self._fresh(req, name)
        os.mknod(path, mode, rdev)
        return self._made(req, name, path, mode)

    def _mkdir(self, req: abi.Request) -> bytes:
        (mode, _), rest = abi.take(abi.MKDIR_IN, req.body)
        (name,) = abi.names(rest, 1)
        path = self._fresh(req, name)
        os.mkdir(path, 0o700)
        return self._made(req, name, path, mode)

    def _remove(self, req: abi.Request, remove: Callable[[bytes], None]) -> bytes:
        (name,) = abi.names(req.body, 1)
        directory = self._path(req.nodeid)
        found = self._find(directory, name)
        if found is None:
            raise OSError(errno.ENOENT, "no such entry")
        path = os.path.join(directory, found[0])
        remove(path)
        self._gone(path)
        return b""

    def _unlink(self, req: abi.Request) -> bytes:
        return self._remove(req, os.unlink)

    def _rmdir(self, req: abi.Request) -> bytes:
        return self._remove(req, os.rmdir)

    def _rename(self, req: abi.Request) -> bytes:
        (newdir,), rest = abi.take(abi.RENAME_IN, req.body)
        return self._do_rename(req, newdir, 0, rest)

    def _rename2(self, req: abi.Request) -> bytes:
        (newdir, flags, _), rest = abi.take(abi.RENAME2_IN, req.body)
        return self._do_rename(req, newdir, flags, rest)

    def _renameat2(self, src: bytes, dst: bytes, flags: int) -> None:
        if self._libc.renameat2(_AT_FDCWD, src, _AT_FDCWD, dst, ctypes.c_uint(flags)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def _do_rename(self, req: abi.Request, newdir: int, flags: int, rest: bytes) -> bytes:
        """APFS's rename: a case-only one respells; onto a folded name replaces it."""
        old, new = abi.names(rest, 2)
        if flags & ~(abi.RENAME_NOREPLACE | abi.RENAME_EXCHANGE) or flags == (
            abi.RENAME_NOREPLACE | abi.RENAME_EXCHANGE
        ):
            raise OSError(errno.EINVAL, "rename flags not supported")
        sdir, ddir = self._path(req.nodeid), self._path(newdir)
        found_src = self._find(sdir, old)
        if found_src is None:
            raise OSError(errno.ENOENT, "no such entry")
        src, src_st = os.path.join(sdir, found_src[0]), found_src[1]
        final = os.path.join(ddir, new)
        found_dst = self._find(ddir, new)
        if flags & abi.RENAME_EXCHANGE:
            if found_dst is None:
                raise OSError(errno.ENOENT, "no such entry")
            dst = os.path.join(ddir, found_dst[0])
            self._renameat2(src, dst, abi.RENAME_EXCHANGE)
            self._moved({src: dst, dst: src})
            return b""
        if found_dst is None:
            if flags & abi.RENAME_NOREPLACE:
                self._renameat2(src, final, abi.RENAME_NOREPLACE)
            else:
                os.rename(src, final)
            self._moved({src: final})
            return b""
        dst, dst_st = os.path.join(ddir, found_dst[0]), found_dst[1]
        if dst != src:
            if flags & abi.RENAME_NOREPLACE:
                raise OSError(errno.EEXIST, "exists (names fold)")
            if (src_st.st_dev, src_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
                return b""  # two links of one file: rename does nothing
            os.rename(src, dst)  # replaces the entry under its stored spelling...
            self._gone(dst)
            self._moved({src: dst})
        if final != dst:  # ...then takes the spelling asked for
            os.rename(dst, final)
            self._moved({dst: final})
        return b""

    def _link(self, req: abi.Request) -> bytes:
        (old,), rest = abi.take(abi.LINK_IN, req.body)
        (name,) = abi.names(rest, 1)
        path = self._fresh(req, name)
        os.link(self._path(old), path, follow_symlinks=False)
        node = self._nodes[old]
        node.paths = [*node.paths, path][:8]
        node.nlookup += 1
        return abi.entry_out(old, os.lstat(path))

    def _handle_of(self, fd: int, nodeid: int) -> bytes:
        fh, self._next_fh = self._next_fh, self._next_fh + 1
        self._files[fh] = fd
        self._file_nodes[fh] = nodeid
        return abi.OPEN_OUT.pack(fh, 0, 0)

    def _open(self, req: abi.Request) -> bytes:
        (flags, _), _ = abi.take(abi.OPEN_IN, req.body)
        flags &= ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY)
        fd = os.open(self._path(req.nodeid), flags | os.O_CLOEXEC)
        return self._handle_of(fd, req.nodeid)

    def _create(self, req: abi.Request) -> bytes:
        (flags, mode, _, _), rest = abi.take(abi.CREATE_IN, req.body)
        (name,) = abi.names(rest, 1)
        directory = self._path(req.nodeid)
        found = self._find(directory, name)
        if found is not None:  # the kernel thought it new: open the folded one, as APFS
            if flags & os.O_EXCL:
                raise OSError(errno.EEXIST, "exists (names fold)")
            path = os.path.join(directory, found[0])
            fd = os.open(path, flags & ~(os.O_CREAT | os.O_NOCTTY) | os.O_CLOEXEC)
            entry = self._entry(req.nodeid, name, found[0], os.fstat(fd))
            return entry + self._handle_of(fd, abi.ENTRY_OUT.unpack_from(entry)[0])
        path = os.path.join(directory, name)
        fd = os.open(path, flags & ~os.O_NOCTTY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            entry = self._made(req, name, path, mode)
        except OSError:
            os.close(fd)
            raise
        return entry + self._handle_of(fd, abi.ENTRY_OUT.unpack_from(entry)[0])

    def _read(self, req: abi.Request) -> bytes:
        (fh, offset, size, *_), _ = abi.take(abi.READ_IN, req.body)
        return os.pread(self._fd(fh), size, offset)

    def _write(self, req: abi.Request) -> bytes:
        (fh, offset, size, *_), data = abi.take(abi.WRITE_IN, req.body)
        if len(data) < size:
            raise abi.ProtocolError("write shorter than it says")
        return abi.WRITE_OUT.pack(os.pwrite(self._fd(fh), data[:size], offset), 0)

    def _fd(self, fh: int) -> int:
        fd = self._files.get(fh)
        if fd is None:
            raise OSError(errno.EBADF, "no such handle")
        return fd

    def _fsync(self, req: abi.Request) -> bytes:
        (fh, flags, _), _ = abi.take(abi.FSYNC_IN, req.body)
        (os.fdatasync if flags & abi.FUSE_FSYNC_FDATASYNC else os.fsync)(self._fd(fh))
        return b""

    def _release(self, req: abi.Request) -> bytes:
        (fh, *_), _ = abi.take(abi.RELEASE_IN, req.body)
        fd = self._files.pop(fh, None)
        self._file_nodes.pop(fh, None)
        if fd is not None:
            os.close(fd)
        return b""

    def _opendir(self, req: abi.Request) -> bytes:
        path = self._path(req.nodeid)
        st = os.lstat(path)
        listing = [(st.st_ino, stat.S_IFDIR >> 12, b"."), (0, stat.S_IFDIR >> 12, b"..")]
        with os.scandir(path) as it:
            for entry in it:
                try:
                    dtype = abi.dirent_type(entry.stat(follow_symlinks=False).st_mode)
                except OSError:
                    continue  # gone meanwhile
                listing.append((entry.inode(), dtype, entry.name))
        fh, self._next_fh = self._next_fh, self._next_fh + 1
        self._dirs[fh] = listing
        return abi.OPEN_OUT.pack(fh, 0, 0)

    def _readdir(self, req: abi.Request) -> bytes:
        (fh, offset, size, *_), _ = abi.take(abi.READ_IN, req.body)
        listing = self._dirs.get(fh)
        if listing is None:
            raise OSError(errno.EBADF, "no such handle")
        out = bytearray()
        for index in range(offset, len(listing)):
            ino, dtype, name = listing[index]
            one = abi.dirent(ino, index + 1, dtype, name)
            if len(out) + len(one) > size:
                break
            out += one
        return bytes(out)

    def _releasedir(self, req: abi.Request) -> bytes:
        (fh, *_), _ = abi.take(abi.RELEASE_IN, req.body)
        self._dirs.pop(fh, None)
        return b""

    def _statfs(self, req: abi.Request) -> bytes:
        s = os.statvfs(self.backing)
        return abi.STATFS_OUT.pack(s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree,
                                   s.f_bsize, s.f_namemax, s.f_frsize, 0)

    def _access(self, req: abi.Request) -> bytes:
        (mask, _), _ = abi.take(abi.ACCESS_IN, req.body)
        if not os.access(self._path(req.nodeid), mask):
            raise OSError(errno.EACCES, "access denied")
        return b""
