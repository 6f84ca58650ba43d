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
import stat
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from mlv import paths
from mlv.errors import LockError, MlvError, PathError, StorageError

T = TypeVar("T")

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
    except (FileNotFoundError, NotADirectoryError):  # never made: its folder is a file
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


def write_new(path: str, data: bytes, mode: int = 0o644) -> None:
    """Create the file `path`, which must not exist yet, holding `data`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def place_bytes(data: bytes, dst: str, mode: int, fresh: bool = False) -> os.stat_result:
    """Make `dst` a new file holding `data` (a copy of a cache object whose bytes are
    at hand), replacing any file atomically; return its stat. With `fresh`, `dst` lies
    in a folder that is itself still a temp folder, so it is written in place."""

    def write(target: str) -> os.stat_result:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            return os.fstat(fd)
        finally:
            os.close(fd)

    return _into_place(dst, fresh, write)


def _into_place(dst: str, fresh: bool, make: Callable[[str], T]) -> T:
    """`make(target)` a new file at `dst` (fresh: in place) or at a temp name beside it,
    then renamed onto `dst`; on any error the new file is removed, and an OSError
    becomes one StorageError line."""
    target = dst if fresh else tmp_name(dst)
    try:
        made = make(target)
        if not fresh:
            commit(target, dst)
        return made
    except BaseException as exc:
        _unlink_quiet(target)
        if isinstance(exc, OSError):
            raise storage_error(exc, dst) from exc
        raise


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, then rename it onto `path`."""
    tmp = tmp_name(path)
    try:
        write_new(tmp, data, mode)
        commit(tmp, path)
    except BaseException as exc:
        _unlink_quiet(tmp)
        if isinstance(exc, OSError):
            raise storage_error(exc, path) from exc
        raise


# Largest file of each kind that mlv reads whole. A clone brings these files, so a limit
# turns a planted huge file into one clear line instead of a long stall or an
# out-of-memory kill. Each is far above anything mlv or a person writes.
MiB = 1 << 20
POINTER_LIMIT = 1 * MiB  # mlv writes ~200 bytes per pointer
CONFIG_LIMIT = 1 * MiB  # a few sections of keys
PIPELINE_LIMIT = 16 * MiB  # mlv.yaml: written by people (or `mlv stage add`)
LOCK_LIMIT = 64 * MiB  # mlv.lock: ~150 bytes per dep or out; 64 MiB is ~400k of them
PARAMS_LIMIT = 64 * MiB  # params files may be generated, but are parsed whole
IGNORE_LIMIT = 100 * MiB  # git itself ignores a .gitignore larger than this

_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def kind_of(mode: int) -> str:
    """What a file mode names, for messages: "a FIFO", "a symlink", …"""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def read_regular(path: str, limit: int, name: str, error: type[MlvError] = StorageError,
                 follow: bool = False, follow_into: str | None = None) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them.

    For files a clone can bring (pointers, mlv.yaml, mlv.lock, params, .gitignore,
    .mlv/config): a symlink is refused unless `follow` (never followed out of the
    workspace), and so is anything that is not a regular file (a FIFO would block the
    read forever, /dev/zero would fill memory). Opened with O_NONBLOCK, so a file swapped
    for a FIFO meanwhile does not block either. A missing file raises FileNotFoundError;
    every other problem raises `error` with a one-line message naming the file (`name`).
    A symlink whose target lies in `follow_into` (the cache's objects, for outputs placed
    by the `symlink` cache type) is followed.
    """
    try:
        if follow_into is not None and not follow and os.path.islink(path):
            follow = paths.inside(os.path.realpath(path), os.path.realpath(follow_into))
        _check_regular(os.stat(path) if follow else os.lstat(path), limit, name, error)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        fd = os.open(path, flags)
    except (FileNotFoundError, MlvError):
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink after the lstat
            raise error(f"{name} is a symlink, not a regular file",
                        hint=f"replace {name} with a regular file") from None
        raise error(f"cannot read {name}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _check_regular(st, limit, name, error)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(max(st.st_size + 1 - total, 1 << 16), limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _too_large(name, limit, error)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_text(path: str, limit: int, name: str, error: type[MlvError] = StorageError,
              follow: bool = False) -> str:
    """`read_regular` as UTF-8 text with universal newlines (what `open(path).read()`
    returns); bytes that are not UTF-8 raise `error`."""
    try:
        text = read_regular(path, limit, name, error, follow).decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{name}: not a text file (not UTF-8)",
                    hint=f"check {name}, or restore it with `git checkout -- {name}`") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _check_regular(st: os.stat_result, limit: int, name: str, error: type[MlvError]) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{name} is a symlink, not a regular file; mlv does not follow it",
                    hint=f"replace {name} with a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name} is {kind_of(st.st_mode)}, not a regular file",
                    hint=f"remove {name}, or replace it with a regular file")
    if st.st_size > limit:
        raise _too_large(name, limit, error)


def _too_large(name: str, limit: int, error: type[MlvError]) -> MlvError:
    return error(f"{name} is larger than {limit // MiB} MiB, the most mlv reads for it",
                 hint=f"check {name}: a file of this kind is never that large")


def makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def _reflink(src: str, dst: str) -> None:
    fd = _open_object(src)
    with os.fdopen(fd, "rb") as fsrc, open(dst, "wb") as fdst:
        fcntl.ioctl(fdst.fileno(), _FICLONE, fsrc.fileno())


def not_an_object(path: str) -> StorageError:
    return StorageError(f"cache object {path} is not a regular file (a symlink, or a special "
                        "file); mlv never follows one", hint="delete it, then fetch it again "
                        "with `mlv fetch` (a clone may not bring its own cache)")


def open_regular(path: str, refuse: Callable[[str], Exception]) -> int:
    """A descriptor of the regular file `path`, opened to read: never through a symlink,
    never a FIFO or a device (O_NONBLOCK, so a FIFO cannot block the open). Anything else
    raises `refuse(kind)`, kind as `kind_of` names it ("a symlink", "a FIFO", …)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refuse("a symlink") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise refuse(kind_of(mode))
    return fd


def _open_object(src: str) -> int:
    """Open a cache object for reading: never through a symlink, never a FIFO."""
    return open_regular(src, lambda _: not_an_object(src))


def open_object(src: str) -> BinaryIO:
    """A cache object opened for reading (binary): never through a symlink, never a
    FIFO or a device (NotAnObjectError, with what to do)."""
    return os.fdopen(_open_object(src), "rb")


def read_object(src: str, size: int) -> bytes:
    """The bytes of a small cache object (`size`: its size as last seen; a file that
    has grown since is read to its end all the same), opened as `open_object` opens it,
    without a buffered file object around it."""
    fd = _open_object(src)
    try:
        data = os.read(fd, size + 1)
        if len(data) <= size:
            more = os.read(fd, 1)  # EOF, unless it grew (or a signal cut the read)
            if not more:
                return data
            data += more
        parts = [data]
        while True:
            part = os.read(fd, 1 << 20)
            if not part:
                return b"".join(parts)
            parts.append(part)
    finally:
        os.close(fd)


def check_object(src: str) -> os.stat_result:
    """Refuse a cache object that is not a regular file, without following it; else its
    lstat."""
    st = os.lstat(src)
    if not stat.S_ISREG(st.st_mode):
        raise not_an_object(src)
    return st


_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM,
                errno.EMLINK, errno.ENOSYS}


COPY_BLOCK = 32 << 20  # with a progress callback, copy in blocks this big


def copy_new(src: str, dst: str, mode: int, from_store: bool = False,
             on_bytes: Callable[[int], None] | None = None) -> os.stat_result:
    """Copy `src` to a new file `dst` inside the kernel (copy_file_range, else sendfile).
    Returns the new file's stat (its inode and mtime survive a later rename). With
    `from_store`, `src` is an object of a store and must be a regular file itself.
    `on_bytes(n)` is called after each block of at most COPY_BLOCK bytes."""
    if from_store:
        fin = _open_object(src)
    else:
        fin = os.open(src, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO gives EOF, never blocks
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            size = os.fstat(fin).st_size
            offset = 0
            block = COPY_BLOCK if on_bytes else 1 << 30
            try:
                while offset < size:
                    done = os.copy_file_range(fin, fout, min(size - offset, block), offset,
                                              offset)
                    if done == 0:
                        break
                    offset += done
                    if on_bytes:
                        on_bytes(done)
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED and exc.errno != errno.EXDEV:
                    raise
            if offset < size:  # copy_file_range unsupported here, or the file grew
                while sent := os.sendfile(fout, fin, offset, block):
                    offset += sent
                    if on_bytes:
                        on_bytes(sent)
            return os.fstat(fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _make(src: str, dst: str, link_type: str, mode: int) -> os.stat_result | None:
    if link_type == "hardlink":
        check_object(src)
        os.link(src, dst, follow_symlinks=False)
    elif link_type == "symlink":
        check_object(src)
        os.symlink(os.path.abspath(src), dst)
    elif link_type == "reflink":
        _reflink(src, dst)
        os.chmod(dst, mode)
    else:
        return copy_new(src, dst, mode, from_store=True)
    return None


def place(src: str, dst: str, link_type: str, mode: int,
          fresh: bool = False) -> os.stat_result | None:
    """Make `dst` hold the bytes of `src` (a cache object), replacing any file atomically.

    `mode` applies to reflinks and copies (less the umask); hard links share the
    object's read-only mode and symlinks point at it. With `fresh`, `dst` lies in a
    folder that is itself still a temp folder, so it is written in place.
    """
    return _into_place(dst, fresh, lambda target: _make(src, target, link_type, mode))


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
        # Never through a link a clone brought (it would truncate the file it names), and
        # never a FIFO or device: the pid write below would go wherever it leads.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                what = "a symlink" if exc.errno == errno.ELOOP else "not a regular file"
                raise _not_regular(self.path, what) from None
            raise storage_error(exc, self.path) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _not_regular(self.path, "not a regular file")
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


def _not_regular(path: str, what: str) -> MlvError:
    return PathError(f"{path} is {what}; a clone may not bring it; delete it",
                     hint=f"`rm {path}` removes only that entry; mlv makes a new lock file")


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
