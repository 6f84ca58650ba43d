"""The stat cache: (inode, size, mtime_ns) -> hash, so an unchanged file is never re-read.

It lives in `.mlv/tmp/state.db` (SQLite) and is safe to delete.
"""

from __future__ import annotations

import os
import sqlite3
import stat

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS state ("
    " inode INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, oid TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS trees ("
    " path TEXT PRIMARY KEY, oid TEXT NOT NULL, fingerprint TEXT NOT NULL)"
)


# SQLite opens these next to the database, following symlinks.
_SIDE_FILES = ("", "-journal", "-wal", "-shm")


def _safe(path: str) -> bool:
    """False when the database or a file SQLite keeps beside it is a symlink or not a
    regular file (a clone can commit `.mlv/tmp/state.db -> /elsewhere`): then the cache
    is neither read nor written, so nothing is written through the link."""
    for suffix in _SIDE_FILES:
        try:
            st = os.lstat(path + suffix)
        except FileNotFoundError:
            continue
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
    return True


class StatCache:
    def __init__(self, path: str) -> None:
        self.path = path
        self._rows: dict[int, tuple[int, int, str]] | None = None
        self._dirty: dict[int, tuple[int, int, str]] = {}
        self._trees: dict[str, tuple[str, str]] = {}  # new rows, not yet saved
        self._tree_rows: dict[str, tuple[str, str]] | None = None  # rows on disk

    def _load(self) -> dict[int, tuple[int, int, str]]:
        if self._rows is None:
            self._rows = {}
            if os.path.exists(self.path) and _safe(self.path):
                try:
                    with sqlite3.connect(self.path, timeout=10) as conn:
                        cur = conn.execute("SELECT inode, size, mtime_ns, oid FROM state")
                        self._rows = {r[0]: (r[1], r[2], r[3]) for r in cur}
                except sqlite3.DatabaseError:
                    self._rows = {}  # a damaged cache is only a slower cache
        return self._rows

    def get(self, st: os.stat_result) -> str | None:
        rows = self._rows if self._rows is not None else self._load()
        row = rows.get(st.st_ino)
        if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        return None

    def set(self, st: os.stat_result, oid: str) -> None:
        row = (st.st_size, st.st_mtime_ns, oid)
        rows = self._load()
        if rows.get(st.st_ino) != row:
            rows[st.st_ino] = row
            self._dirty[st.st_ino] = row

    def tree_matches(self, path: str, oid: str, fingerprint: str) -> bool:
        """True when folder `path` was last seen holding exactly `oid`, and nothing
        about its files (names, inodes, sizes, mtimes) has changed since."""
        return self.tree_oid(path, fingerprint) == oid

    def tree_oid(self, path: str, fingerprint: str) -> str | None:
        """The oid recorded for folder `path` if its fingerprint is unchanged."""
        if self._tree_rows is None:
            self._tree_rows = {}
            if os.path.exists(self.path) and _safe(self.path):
                try:
                    with sqlite3.connect(self.path, timeout=10) as conn:
                        cur = conn.execute("SELECT path, oid, fingerprint FROM trees")
                        self._tree_rows = {r[0]: (r[1], r[2]) for r in cur}
                    conn.close()
                except sqlite3.Error:
                    self._tree_rows = {}
        row = self._trees.get(path) or self._tree_rows.get(path)
        return row[0] if row and row[1] == fingerprint else None

    def set_tree(self, path: str, oid: str, fingerprint: str) -> None:
        self._trees[path] = (oid, fingerprint)

    def save(self) -> None:
        """Write new entries. Failure to save only costs speed, never correctness."""
        if not self._dirty and not self._trees:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            if not _safe(self.path):
                return
            with sqlite3.connect(self.path, timeout=10) as conn:
                conn.executescript(_SCHEMA)
                conn.executemany(
                    "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
                    [(ino, *row) for ino, row in self._dirty.items()],
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO trees VALUES (?, ?, ?)",
                    [(path, *row) for path, row in self._trees.items()],
                )
            conn.close()
        except (sqlite3.Error, OSError):
            return
        self._dirty.clear()
        self._trees.clear()
