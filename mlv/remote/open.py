"""Build the Remote a configured remote's options name."""

from __future__ import annotations

import posixpath
from typing import Any

from mlv.remote import s3
from mlv.remote.base import REMOTE_KEYS, Remote, RemoteError, masked_url
from mlv.remote.fsspec_remote import FsspecRemote
from mlv.remote.local import LocalRemote, local_root


def open_remote(name: str, options: dict[str, Any], default_jobs: int,
                jobs: int | None = None, local_jobs: int | None = None) -> Remote:
    """Build the Remote for a configured remote's options. `default_jobs` is for network
    remotes (many requests in flight); `local_jobs` for folders (disk-bound)."""
    url = str(options.get("url", ""))
    if not url:
        raise RemoteError(f"remote '{name}' has no url",
                          hint=f"set one with `mlv remote modify {name} url URL`")
    configured = jobs or int(options.get("jobs") or 0)
    protocol, _, rest = url.partition("://")
    folder = local_root(url)
    if folder is not None:
        return LocalRemote(name, url, configured or local_jobs or default_jobs, folder)
    jobs = configured or default_jobs
    import fsspec

    ranges = None
    try:
        if protocol in ("s3", "s3a"):
            fs: Any = s3.filesystem(options)
            ranges = s3.RangeReader(options)
        else:
            extra = {k: v for k, v in options.items() if k not in REMOTE_KEYS}
            fs = fsspec.filesystem(protocol, **extra)
    except (ImportError, ValueError) as exc:
        raise RemoteError(f"remote '{name}': protocol {protocol}:// is not available "
                          f"({masked_url(str(exc))})",
                          hint="install the fsspec package for it (e.g. gcsfs, adlfs, sshfs)"
                          ) from None
    return FsspecRemote(name, url, jobs, fs, posixpath.normpath(rest),
                        options.get("endpoint_url"), ranges)
