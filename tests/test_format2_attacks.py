"""Attacks on remote format 2 by a hostile remote or a hostile clone: what the remote
brings is bounded, never followed out of the remote, and never slows mlv down
without limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlv.remote.packs import MARKER_KEY, Marker, marker_bytes
from tests.conftest import make_tree, one_error

MiB = 2**20


def test_a_folder_remote_never_follows_a_symlinked_marker(
        mlv_repo: Path, tmp_path: Path, mlv: Any) -> None:
    """A clone may name a folder of its own tree as its remote; a marker there that is a
    symlink (to /dev/zero, which would fill the memory, to a FIFO, which would hang, or
    to any file outside the remote) is refused with one line, never read."""
    outside = tmp_path / "outside.json"
    outside.write_bytes(marker_bytes(Marker()))
    store = mlv_repo / "store"
    store.mkdir()
    (store / MARKER_KEY).symlink_to(outside)
    assert mlv("remote", "add", "-d", "store", "store", cwd=mlv_repo).exit_code == 0
    make_tree(mlv_repo, {"a.txt": "alpha\n"})
    assert mlv("add", "a.txt", cwd=mlv_repo).exit_code == 0
    one_error(mlv("status", "--cloud", cwd=mlv_repo), MARKER_KEY, "symlink")
    one_error(mlv("push", cwd=mlv_repo), MARKER_KEY, "symlink")
    assert not (store / "index").exists()
