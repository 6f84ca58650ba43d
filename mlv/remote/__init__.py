"""Remotes: object stores with the cache's layout, reached through fsspec.

The names other modules use are re-exported here, so `from mlv.remote import Remote`
keeps working whatever module of the package holds them.
"""

from mlv.remote.fsspec_remote import (
    BUFFER_MAX,
    EXISTS_ONE_BY_ONE,
    MASK,
    PAGE_COST_IN_HEADS,
    PART_SIZE,
    REMOTE_KEYS,
    SECRET_KEYS,
    WHOLE_OBJECT_MAX,
    After,
    Failures,
    FsspecRemote,
    LocalRemote,
    Remote,
    RemoteError,
    announce,
    counter,
    is_secret,
    key_of,
    local_root,
    masked_url,
    open_remote,
)

__all__ = ["BUFFER_MAX", "EXISTS_ONE_BY_ONE", "MASK", "PAGE_COST_IN_HEADS", "PART_SIZE",
           "REMOTE_KEYS", "SECRET_KEYS", "WHOLE_OBJECT_MAX", "After", "Failures",
           "FsspecRemote", "LocalRemote", "Remote", "RemoteError", "announce", "counter",
           "is_secret", "key_of", "local_root", "masked_url", "open_remote"]
