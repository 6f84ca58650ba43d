"""Remotes: object stores with the cache's layout.

- `base`: the `Remote` interface every backend offers, its errors, secret masking;
- `keys`: the key layout (where each object lives, relative to a remote's root);
- `local`: a folder on this machine; `fsspec_remote`: any fsspec filesystem, with
  S3's tuning in `s3`; `memory`: a dictionary, for tests (no URL names it);
- `open`: the Remote a configured remote's options name.

The names other modules use are re-exported here: `from mlv.remote import Remote`.
"""

from mlv.remote.base import (
    EXISTS_ONE_BY_ONE,
    MASK,
    REMOTE_KEYS,
    SECRET_KEYS,
    After,
    Failures,
    Remote,
    RemoteError,
    announce,
    is_secret,
    masked_url,
)
from mlv.remote.fsspec_remote import FsspecRemote, counter
from mlv.remote.keys import InvalidKeyError, check_key, key_of
from mlv.remote.local import LocalRemote, local_root
from mlv.remote.open import open_remote

__all__ = ["EXISTS_ONE_BY_ONE", "MASK", "REMOTE_KEYS", "SECRET_KEYS", "After", "Failures",
           "FsspecRemote", "InvalidKeyError", "LocalRemote", "Remote", "RemoteError",
           "announce", "check_key", "counter", "is_secret", "key_of", "local_root",
           "masked_url", "open_remote"]
