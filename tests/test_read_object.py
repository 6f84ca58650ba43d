"""fsio.read_object: how a push reads a small cache object (no buffered file around it)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mlv import fsio
from mlv.errors import StorageError


def test_reads_the_whole_object(tmp_path: Path) -> None:
    for size in (0, 1, 4095, 4096, 70_000):
        obj = tmp_path / f"o{size}"
        obj.write_bytes(os.urandom(size))
        assert fsio.read_object(str(obj), size) == obj.read_bytes()


@pytest.mark.parametrize("grown_by", [1, 10, 3 << 20])
def test_an_object_that_grew_since_its_size_was_taken_is_read_to_its_end(
        tmp_path: Path, grown_by: int) -> None:
    obj = tmp_path / "o"
    obj.write_bytes(b"x" * 1000 + os.urandom(grown_by))  # its size was taken at 1000
    assert fsio.read_object(str(obj), 1000) == obj.read_bytes()


def test_an_object_that_shrank_is_read_as_it_is(tmp_path: Path) -> None:
    obj = tmp_path / "o"
    obj.write_bytes(b"abc")
    assert fsio.read_object(str(obj), 1000) == b"abc"


def test_a_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    link = tmp_path / "o"
    link.symlink_to(secret)
    with pytest.raises(StorageError, match="not a regular file"):
        fsio.read_object(str(link), 9)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "o"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            fsio.read_object(str(fifo), 10)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert len(outcome) == 1 and isinstance(outcome[0], StorageError)
    assert "not a regular file" in str(outcome[0])
