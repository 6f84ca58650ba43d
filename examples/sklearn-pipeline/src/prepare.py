"""Stage `prepare`: split scikit-learn's bundled digits dataset into train and test CSVs."""

from pathlib import Path

import numpy as np
import yaml
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
digits = load_digits()  # 1797 8x8 images, bundled with scikit-learn (no download)
x_train, x_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=params["test_size"], random_state=params["seed"],
    stratify=digits.target)

out = Path("data/prepared")
out.mkdir(parents=True, exist_ok=True)
header = ",".join([f"px{i}" for i in range(digits.data.shape[1])] + ["label"])
for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
    rows = np.column_stack([x, y]).astype(int)
    np.savetxt(out / f"{name}.csv", rows, fmt="%d", delimiter=",", header=header, comments="")
print(f"prepared {len(y_train)} train and {len(y_test)} test images in {out}/")
