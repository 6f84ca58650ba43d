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
