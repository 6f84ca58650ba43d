"""The stat cache: (inode, size, mtime_ns) -> hash, so an unchanged file is never re-read.

It lives in `.mlv/tmp/state.db` (SQLite) and is safe to delete.
"""

from __future__ import annotations

import os
import sqlite3

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS state ("
    " inode INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, oid TEXT NOT NULL)"
)


class StatCache:
    def __init__(self, path: str) -> None:
        self.path = path
        self._rows: dict[int, tuple[int, int, str]] | None = None
        self._dirty: dict[int, tuple[int, int, str]] = {}

    def _load(self) -> dict[int, tuple[int, int, str]]:
        if self._rows is None:
            self._rows = {}
            if os.path.exists(self.path):
                try:
                    with sqlite3.connect(self.path, timeout=10) as conn:
                        cur = conn.execute("SELECT inode, size, mtime_ns, oid FROM state")
                        self._rows = {r[0]: (r[1], r[2], r[3]) for r in cur}
                except sqlite3.DatabaseError:
                    self._rows = {}  # a damaged cache is only a slower cache
        return self._rows

    def get(self, st: os.stat_result) -> str | None:
        row = self._load().get(st.st_ino)
        if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        return None

    def set(self, st: os.stat_result, oid: str) -> None:
        row = (st.st_size, st.st_mtime_ns, oid)
        rows = self._load()
        if rows.get(st.st_ino) != row:
            rows[st.st_ino] = row
            self._dirty[st.st_ino] = row

    def save(self) -> None:
        """Write new entries. Failure to save only costs speed, never correctness."""
        if not self._dirty:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with sqlite3.connect(self.path, timeout=10) as conn:
                conn.execute(_SCHEMA)
                conn.executemany(
                    "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
                    [(ino, *row) for ino, row in self._dirty.items()],
                )
            conn.close()
        except (sqlite3.Error, OSError):
            return
        self._dirty.clear()
