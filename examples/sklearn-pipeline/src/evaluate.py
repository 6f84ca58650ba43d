"""Stage `evaluate`: score the model on the test split; write metrics.json and a
confusion matrix (plots/confusion.csv, one row per test image: actual,predicted)."""

import json
import pickle
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

test = np.loadtxt("data/prepared/test.csv", delimiter=",", skiprows=1)
x, y = test[:, :-1], test[:, -1].astype(int)
with open("models/model.pkl", "rb") as fobj:
    model = pickle.load(fobj)
predicted = model.predict(x)

metrics = {"accuracy": round(float(accuracy_score(y, predicted)), 4),
           "f1_macro": round(float(f1_score(y, predicted, average="macro")), 4),
           "n_test": len(y)}
Path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

Path("plots").mkdir(exist_ok=True)
with open("plots/confusion.csv", "w") as fobj:
    fobj.write("actual,predicted\n")
    fobj.writelines(f"{a},{p}\n" for a, p in zip(y, predicted))
print(f"accuracy {metrics['accuracy']}, macro F1 {metrics['f1_macro']}")
