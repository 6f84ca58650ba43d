"""Local filesystem primitives: atomic writes, links, and the repository lock.

Every file another process or a crash could observe is written through this module:
bytes go to a temp file named after the target in the same folder, and only a
complete file is renamed onto the final name. A temp file is removed on any error.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import shutil
import time

from mlv.errors import LockError, StorageError

TMP_MARK = ".mlvtmp-"
LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
_FICLONE = 0x40049409  # linux/fs.h


_RUN = os.urandom(4).hex()  # with the pid and a counter: unique across runs and threads
_SEQ = itertools.count()


# Bytes of a name kept in a temp name: with the dot and the longest suffix
# (".mlvtmp-" pid "-" run "-" counter, under 40 bytes) it stays below NAME_MAX (255).
_TMP_NAME_ROOM = 200
_TMP_HASH_LEN = 12


def _tmp_prefix(name: str) -> str:
    """`.name.mlvtmp-`, with a long name cut (in bytes of the filesystem encoding) and
    told apart from others by a short hash of the whole name."""
    raw = os.fsencode(name)
    if len(raw) > _TMP_NAME_ROOM:
        import hashlib

        digest = hashlib.sha256(raw).hexdigest()[:_TMP_HASH_LEN]
        cut = name
        while len(os.fsencode(cut)) > _TMP_NAME_ROOM - _TMP_HASH_LEN - 1:
            cut = cut[:-1]
        name = f"{cut}~{digest}"
    return f".{name}{TMP_MARK}"


def tmp_name(path: str) -> str:
    """A unique temp name next to `path` (same folder, so rename is atomic)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f"{_tmp_prefix(tail)}{os.getpid()}-{_RUN}-{next(_SEQ)}")


def is_tmp_name(name: str) -> bool:
    return TMP_MARK in name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: str) -> list[str]:
    """Delete temp files and folders left beside `path` by mlv processes that died
    (kill -9, power loss). Temps of running processes are left alone."""
    folder, name = os.path.split(path)
    prefix = _tmp_prefix(name)  # a name too long to cut never had another form
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return removed
    for leftover in names:
        pid = leftover[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            remove_tree(os.path.join(folder, leftover))
            removed.append(leftover)
    return removed


def commit(tmp: str, final: str) -> None:
    """Move a complete temp file onto its final name (atomic on POSIX)."""
    os.replace(tmp, final)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def storage_error(exc: OSError, path: str) -> StorageError:
    """Turn an OSError into a one-line error that says what to do."""
    if exc.errno == errno.ENOSPC:
        return StorageError(f"no space left on device while writing {path}",
                            hint="free some disk space (`mlv gc` removes unused objects)")
    if exc.errno == errno.EXDEV:
        return StorageError(f"cannot link {path} to the cache: they are on different disks",
                            hint="put cache.dir on the same disk, or allow copies with "
                                 "`mlv config cache.type hardlink,copy`")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"permission denied: {path}",
                            hint="check the file and folder permissions")
    return StorageError(f"{exc.strerror or exc}: {path}")


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, then rename it onto `path`."""
    tmp = tmp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        commit(tmp, path)
    except BaseException as exc:
        _unlink_quiet(tmp)
        if isinstance(exc, OSError):
            raise storage_error(exc, path) from exc
        raise


def makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def _reflink(src: str, dst: str) -> None:
    with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
        fcntl.ioctl(fdst.fileno(), _FICLONE, fsrc.fileno())


_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM,
                errno.EMLINK, errno.ENOSYS}


def copy_new(src: str, dst: str, mode: int) -> os.stat_result:
    """Copy `src` to a new file `dst` inside the kernel (copy_file_range, else sendfile).
    Returns the new file's stat (its inode and mtime survive a later rename)."""
    fin = os.open(src, os.O_RDONLY)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            size = os.fstat(fin).st_size
            offset = 0
            try:
                while offset < size:
                    done = os.copy_file_range(fin, fout, size - offset, offset, offset)
                    if done == 0:
                        break
                    offset += done
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED and exc.errno != errno.EXDEV:
                    raise
            if offset < size:  # copy_file_range unsupported here, or the file grew
                while sent := os.sendfile(fout, fin, offset, 1 << 30):
                    offset += sent
            return os.fstat(fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _make(src: str, dst: str, link_type: str, mode: int) -> os.stat_result | None:
    if link_type == "hardlink":
        os.link(src, dst)
    elif link_type == "symlink":
        os.symlink(os.path.abspath(src), dst)
    elif link_type == "reflink":
        _reflink(src, dst)
        os.chmod(dst, mode)
    else:
        return copy_new(src, dst, mode)
    return None


def place(src: str, dst: str, link_type: str, mode: int,
          fresh: bool = False) -> os.stat_result | None:
    """Make `dst` hold the bytes of `src` (a cache object), replacing any file atomically.

    `mode` applies to reflinks and copies (less the umask); hard links share the
    object's read-only mode and symlinks point at it. With `fresh`, `dst` lies in a
    folder that is itself still a temp folder, so it is written in place.
    """
    if fresh:
        try:
            return _make(src, dst, link_type, mode)
        except BaseException as exc:
            _unlink_quiet(dst)
            if isinstance(exc, OSError):
                raise storage_error(exc, dst) from exc
            raise
    tmp = tmp_name(dst)
    try:
        st = _make(src, tmp, link_type, mode)
        commit(tmp, dst)
        return st
    except BaseException as exc:
        _unlink_quiet(tmp)
        if isinstance(exc, OSError):
            raise storage_error(exc, dst) from exc
        raise


def place_first_working(src: str, dst: str, link_types: list[str], mode: int,
                        fresh: bool = False, skip: set[str] | None = None) -> os.stat_result:
    """Try each link type in order; return the stat of what was placed.

    A type the filesystem does not support (reflink on ext4, hard links across
    disks) is added to `skip`, so the caller's later calls do not try it again.
    """
    if skip is None:
        skip = set()
    kinds = [k for k in link_types if k not in skip] or link_types[-1:]
    for i, kind in enumerate(kinds):
        try:
            st = place(src, dst, kind, mode, fresh)
            return st if st is not None else os.stat(dst)
        except StorageError as exc:
            cause = exc.__cause__
            last = i == len(kinds) - 1
            if last or not isinstance(cause, OSError) or cause.errno not in _UNSUPPORTED:
                raise
            skip.add(kind)
    raise AssertionError("unreachable")


def remove_file(path: str) -> None:
    """Remove a file, also when it is read-only (as cache objects and links are)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise storage_error(exc, path) from exc


def remove_tree(path: str) -> None:
    def onerror(func, p, exc_info):  # noqa: ANN001 - shutil callback
        parent = os.path.dirname(p)
        os.chmod(parent, 0o755)
        func(p)

    if os.path.islink(path) or not os.path.isdir(path):
        remove_file(path)
    else:
        shutil.rmtree(path, onerror=onerror)


def rename(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:
        raise storage_error(exc, dst) from exc


class RepoLock:
    """An exclusive lock on a repository, held by one mlv process at a time.

    The lock file records the holder's pid so a waiting process can name it.
    """

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        if timeout is None:
            try:
                timeout = float(os.environ.get("MLV_LOCK_TIMEOUT", "3"))
            except ValueError:
                timeout = 3.0
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self) -> None:
        makedirs(os.path.dirname(self.path))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, self.path) from exc
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f" (pid {holder})" if holder else ""
                    raise LockError(
                        f"another mlv process{who} is running in this repository",
                        hint="wait for it to finish, then run your command again",
                    ) from None
                time.sleep(0.05)
        self._fd = fd
        try:  # the pid only helps a waiting process name the holder: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
