"""Content-defined chunking (mlv/chunker.py): stable boundaries, ids, limits, availability."""

from __future__ import annotations

import os
import random
import sys
import types
from pathlib import Path

import pytest

from mlv.errors import PathError
from mlv.hashing import hash_bytes
from mlv.remote import chunker

# Small parameters keep the tests fast; the marker's defaults are 64 KiB/256 KiB/1 MiB.
MIN, AVG, MAX = 4096, 16384, 65536


def data_of(size: int, seed: int = 3) -> bytes:
    return random.Random(seed).randbytes(size)


def cut(path: Path) -> list[tuple[int, int, str]]:
    return list(chunker.chunks(str(path), MIN, AVG, MAX))


def test_the_compiled_chunker_is_available_here() -> None:
    assert chunker.available() is None


def test_chunks_cover_the_file_within_limits_and_are_named_by_their_hash(
        tmp_path: Path) -> None:
    data = data_of(1_000_000)
    (tmp_path / "f").write_bytes(data)
    got = cut(tmp_path / "f")
    assert len(got) > 10
    assert [o for o, _, _ in got] == [sum(n for _, n, _ in got[:i]) for i in range(len(got))]
    assert sum(n for _, n, _ in got) == len(data)
    assert all(MIN <= n <= MAX for _, n, _ in got[:-1]) and 0 < got[-1][1] <= MAX
    assert all(i == hash_bytes(data[o:o + n]) for o, n, i in got)


def test_the_same_bytes_cut_the_same_way(tmp_path: Path) -> None:
    data = data_of(500_000)
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(data)
    assert cut(tmp_path / "a") == cut(tmp_path / "b") == cut(tmp_path / "a")


def test_an_append_changes_only_the_last_chunks(tmp_path: Path) -> None:
    data = data_of(1_000_000)
    (tmp_path / "old").write_bytes(data)
    (tmp_path / "new").write_bytes(data + data_of(20_000, seed=4))
    old, new = cut(tmp_path / "old"), cut(tmp_path / "new")
    assert new[:len(old) - 1] == old[:-1]
    changed = {i for _, _, i in new} - {i for _, _, i in old}
    assert len(changed) <= 3


def test_an_edit_in_the_middle_changes_only_the_chunks_around_it(tmp_path: Path) -> None:
    data = data_of(1_000_000)
    edited = data[:500_000] + b"an edit" + data[500_010:]
    (tmp_path / "old").write_bytes(data)
    (tmp_path / "new").write_bytes(edited)
    old_ids = {i for _, _, i in cut(tmp_path / "old")}
    new = cut(tmp_path / "new")
    assert len([1 for _, _, i in new if i not in old_ids]) <= 3


def test_small_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "small").write_bytes(b"tiny")
    assert cut(tmp_path / "empty") == []
    assert cut(tmp_path / "small") == [(0, 4, hash_bytes(b"tiny"))]


def test_stopping_early_releases_the_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(data_of(300_000))
    gen = chunker.chunks(str(tmp_path / "f"), MIN, AVG, MAX)
    next(gen)
    gen.close()  # the map closes without "exported pointers exist"
    with pytest.raises(KeyError):
        for _ in chunker.chunks(str(tmp_path / "f"), MIN, AVG, MAX):
            raise KeyError


def test_a_fifo_is_refused_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PathError, match="not a regular file"):
        cut(tmp_path / "pipe")


def test_without_the_compiled_extension_the_chunker_says_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyfastcdc.cy.fastcdc", None)
    reason = chunker.available()
    assert reason and "compiled extension" in reason and "\n" not in reason
    (tmp_path / "f").write_bytes(b"data")
    with pytest.raises(chunker.ChunkerUnavailableError, match="compiled extension"):
        cut(tmp_path / "f")


def test_the_pure_python_fallback_counts_as_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("pyfastcdc.cy.fastcdc")
    fake.__file__ = "/site-packages/pyfastcdc/py/fastcdc.py"
    fake.FastCDC = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyfastcdc.cy.fastcdc", fake)
    reason = chunker.available()
    assert reason and "not a compiled extension" in reason and "fallback" in reason


def test_without_pyfastcdc_the_chunker_says_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyfastcdc", None)
    assert chunker.available() == "pyfastcdc is not installed (pip install pyfastcdc)"
