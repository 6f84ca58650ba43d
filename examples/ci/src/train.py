"""Stage train: a one-number model. The threshold is the midpoint between the mean x
of each label, plus the param train.offset; a row is predicted 1 when x is above it.
The test rows are fixed (every fifth row of the first day), so that runs on
more days compare; every other row is for training. Writes models/model.json, metrics.json
(accuracy on the held-out rows) and plots/accuracy.csv (accuracy for thresholds
around the chosen one)."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def accuracy(rows: list[tuple[float, int]], threshold: float) -> float:
    right = sum((x > threshold) == bool(label) for x, label in rows)
    return right / len(rows) if rows else 0.0


def main() -> None:
    offset = float(json.loads(Path("params.json").read_text())["train"]["offset"])
    with open("data/prepared.csv", newline="") as f:
        rows = [(r["day"], float(r["x"]), int(r["label"])) for r in csv.DictReader(f)]
    first_day = min((day for day, _, _ in rows), default="")
    held_out = {i for i, (day, _, _) in enumerate(rows) if day == first_day and not i % 5}
    test = [(x, label) for i, (_, x, label) in enumerate(rows) if i in held_out]
    train = [(x, label) for i, (_, x, label) in enumerate(rows) if i not in held_out]
    means = [sum(x for x, label in train if label == k) / max(1, sum(1 for _, label in train
             if label == k)) for k in (0, 1)]
    threshold = round((means[0] + means[1]) / 2 + offset, 4)

    Path("models").mkdir(exist_ok=True)
    Path("models/model.json").write_text(json.dumps({"threshold": threshold}) + "\n")
    metrics = {"accuracy": round(accuracy(test, threshold), 4), "n_train": len(train),
               "n_test": len(test)}
    Path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    Path("plots").mkdir(exist_ok=True)
    with open("plots/accuracy.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["threshold", "accuracy"])
        for step in range(-20, 21, 2):
            t = round(threshold + step, 4)
            writer.writerow([t, round(accuracy(test, t), 4)])
    print(f"threshold {threshold}: accuracy {metrics['accuracy']} on {len(test)} rows")


if __name__ == "__main__":
    main()
