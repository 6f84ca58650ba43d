"""The day's new data: a placeholder for your own ingestion (a database export, a
bucket sync, a scraper…). It writes data/raw/DAY.csv with ROWS rows (default 500) of `x,label`:
label 1 tends to have a larger x than label 0. The rows depend only on DAY, so a
run is repeatable.

    python3 src/new_data.py 2026-12-01 [ROWS]
"""

from __future__ import annotations

import random
import sys
import zlib
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        sys.exit("usage: new_data.py DAY [ROWS]")
    day, rows = argv[1], int(argv[2]) if len(argv) == 3 else 500
    rng = random.Random(zlib.crc32(day.encode()))
    out = Path("data/raw") / f"{day}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["x,label"]
    for _ in range(rows):
        label = rng.randint(0, 1)
        x = rng.gauss(65.0 if label else 35.0, 11.0)
        lines.append(f"{x:.2f},{label}")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {rows} rows")


if __name__ == "__main__":
    main(sys.argv)
