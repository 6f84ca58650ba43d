"""Every error a user can cause is an MlvError: one line, an optional hint, an exit code."""

from __future__ import annotations


class MlvError(Exception):
    """A problem the user can fix. The CLI prints `error: <message>` and the hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(MlvError):
    """The command line itself is wrong."""

    exit_code = 2


class NotARepoError(MlvError):
    pass


class ConfigError(MlvError):
    pass


class PointerError(MlvError):
    """A malformed or unsafe `.mlv` pointer file."""


class PathError(MlvError):
    """A path the user named cannot be used for this action."""


class LockError(MlvError):
    pass


class ObjectMissingError(MlvError):
    def __init__(self, message: str, missing: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.missing = missing


class CheckoutConflictError(MlvError):
    def __init__(self, message: str, paths: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.paths = paths


class StorageError(MlvError):
    """A disk or permission problem while reading or writing data."""


class ScmError(MlvError):
    pass


# ---- reading versioned data (`mlv ls`, `mlv get`, `mlv import`, `mlv.api.open`, `mlv://`)
# One base, so Python code can `except mlv.errors.ReadError`. A remote that cannot be
# reached raises mlv.remote.RemoteError, a bad config ConfigError: both MlvErrors too.


class ReadError(MlvError):
    """Versioned data could not be read: the base of the errors below."""


class RepoNotFound(ReadError):
    """The repository is neither a local git repository nor something git can clone."""


class RevisionNotFound(ReadError):
    """The revision (branch, tag, commit) does not exist in the repository."""


class PathNotFound(ReadError, FileNotFoundError):
    """The path is neither tracked by git nor by mlv at that revision (also a
    FileNotFoundError, so fsspec and `open()`-style callers see what they expect)."""


class NoRemote(ReadError, ConfigError):
    """The data is not in the cache and the repository names no remote to read it from."""


class NotPushed(ReadError, ObjectMissingError):
    """The remote lacks an object the revision records (it was never pushed)."""


class ObjectCorrupted(ReadError):
    """An object's bytes do not hash to its id: never returned as data."""


class NotAFile(ReadError):
    """The path names a folder (or a link, a submodule) where a file is wanted."""


class NoURL(ReadError):
    """No single URL holds the file's bytes (`mlv.api.get_url`): git tracks it, or the
    remote keeps it in a pack or cut into chunks (format 2)."""


class ReadOnly(ReadError, PermissionError):
    """A write to versioned data read at a revision (the `mlv://` filesystem is
    read-only). Also a PermissionError, as fsspec callers expect."""
