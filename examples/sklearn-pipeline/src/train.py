"""Stage `train`: fit a random forest on data/prepared/train.csv, pickle it to models/."""

import pickle
from pathlib import Path

import numpy as np
import yaml
from sklearn.ensemble import RandomForestClassifier

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
train = np.loadtxt("data/prepared/train.csv", delimiter=",", skiprows=1)
x, y = train[:, :-1], train[:, -1].astype(int)

model = RandomForestClassifier(n_estimators=params["n_estimators"],
                               max_depth=params["max_depth"],
                               random_state=params["seed"], n_jobs=1)
model.fit(x, y)

Path("models").mkdir(exist_ok=True)
with open("models/model.pkl", "wb") as fobj:
    pickle.dump(model, fobj)
print(f"trained a random forest ({params['n_estimators']} trees) on {len(y)} images")
