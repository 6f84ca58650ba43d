"""Content-defined chunking of big files: FastCDC 2020 through pyfastcdc's compiled build.

A chunk boundary depends only on the bytes around it, so an edit moves the boundaries
near it and leaves the rest of the file's chunks (and their ids) as they were: a new
version of a big file shares most of its chunks with the old one.

Only the compiled (Cython) pyfastcdc is used: its pure-Python fallback chunks at a few
MB/s, slower than uploading the whole file. `available()` says whether chunking can be
used and, if not, why; callers then store big files whole.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import mmap
import warnings
from collections.abc import Iterator
from typing import Any

import xxhash

from mlv.errors import MlvError
from mlv.hashing import open_regular


class ChunkerUnavailableError(MlvError):
    """The compiled chunker cannot be used here (callers store big files whole)."""


def _compiled() -> Any:
    """pyfastcdc's compiled FastCDC class; ImportError (with a reason) when there is none."""
    try:
        cy = importlib.import_module("pyfastcdc.cy.fastcdc")
    except ImportError as exc:
        raise ImportError(f"pyfastcdc's compiled extension cannot be loaded ({exc})") \
            from None
    path = getattr(cy, "__file__", None) or ""
    if not path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        raise ImportError(f"pyfastcdc's FastCDC comes from {path or 'nowhere'}, not a "
                          "compiled extension")
    return cy.FastCDC


def available() -> str | None:
    """None when the compiled chunker is usable; otherwise one line saying why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its fallback warns on import
            importlib.import_module("pyfastcdc")
    except ImportError:
        return "pyfastcdc is not installed (pip install pyfastcdc)"
    try:
        _compiled()
    except ImportError as exc:
        return (f"{exc}; only its slow pure-Python fallback is there "
                "(reinstall pyfastcdc from a wheel for this Python)")
    return None


def chunks(path: str, min_size: int, avg_size: int, max_size: int
           ) -> Iterator[tuple[int, int, str]]:
    """(offset, length, id) of each chunk of the regular file at `path`, in file order;
    the id is the xxh3-128 of the chunk's bytes (mlv's object id). The file is mapped into
    memory, not read into it. Raises ChunkerUnavailableError without the compiled
    chunker (check `available()` first)."""
    reason = available()
    if reason:
        raise ChunkerUnavailableError(
            f"cannot cut big files into chunks: {reason}",
            hint="install a pyfastcdc wheel for this Python: "
                 "pip install --force-reinstall pyfastcdc")
    cdc = _compiled()(avg_size, min_size=min_size, max_size=max_size)
    with open_regular(path) as fobj:
        size = fobj.seek(0, 2)
        if size == 0:
            return
        with mmap.mmap(fobj.fileno(), size, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            cuts = cdc.cut_buf(view)
            chunk = None
            try:
                for chunk in cuts:
                    yield chunk.offset, chunk.length, xxhash.xxh3_128_hexdigest(chunk.data)
            finally:
                # The cutter and its last chunk hold views of the map: drop them before
                # the map closes (closing a map that is still viewed fails).
                cuts = chunk = None
                view.release()
