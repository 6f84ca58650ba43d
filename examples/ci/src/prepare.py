"""Stage prepare: every CSV file in data/raw/ (one per day) into one table,
data/prepared.csv (`day,x,label`), leaving out rows that do not parse."""

from __future__ import annotations

import csv
from pathlib import Path


def main() -> None:
    rows, skipped = [], 0
    for path in sorted(Path("data/raw").glob("*.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    x, label = float(row["x"]), int(row["label"])
                except (KeyError, TypeError, ValueError):
                    skipped += 1
                    continue
                if label in (0, 1):
                    rows.append((path.stem, x, label))
                else:
                    skipped += 1
    out = Path("data/prepared.csv")
    with out.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["day", "x", "label"])
        writer.writerows((day, f"{x:.2f}", label) for day, x, label in rows)
    days = len({day for day, _, _ in rows})
    print(f"prepared {len(rows)} rows from {days} day(s), skipped {skipped}")


if __name__ == "__main__":
    main()
