"""One function per user action. Nothing here prints: results are returned.

The public Python API for reading versioned data is exported here, loaded on first use
(PEP 562), so that the CLI, which imports `mlv.api.*` modules, does not pay for it:

    import mlv.api
    with mlv.api.open("data/train.csv", rev="v1") as f: ...
    mlv.api.read(path, repo=None, rev=None, remote=None, mode="r", encoding=None)
    mlv.api.get_url(path, repo=None, rev=None, remote=None)
    mlv.api.params_show(repo=None, rev=None)
    mlv.api.metrics_show(repo=None, rev=None)

and the errors they raise (`mlv.api.ReadError` and its subclasses; see mlv.errors)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlv.api.public import get_url, metrics_show, open, params_show, read
    from mlv.errors import (
        NoRemote,
        NotAFile,
        NotPushed,
        NoURL,
        ObjectCorrupted,
        PathNotFound,
        ReadError,
        ReadOnly,
        RepoNotFound,
        RevisionNotFound,
    )

__all__ = [
    "open", "read", "get_url", "params_show", "metrics_show",
    "ReadError", "RepoNotFound", "RevisionNotFound", "PathNotFound", "NoRemote",
    "NotPushed", "ObjectCorrupted", "NotAFile", "NoURL", "ReadOnly",
]
_LAZY = {name: "mlv.api.public" if name[0].islower() else "mlv.errors" for name in __all__}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlv.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
