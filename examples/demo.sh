#!/usr/bin/env bash
# The main job, end to end: track a generated dataset in a throw-away git repo,
# change it, see what changed, and restore it. Needs `mlv` on PATH (make demo does that).
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/mlv-demo-XXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/repo" && cd "$work/repo"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

git init -q -b main
git config user.name "mlv demo"; git config user.email "demo@example.com"
step mlv init
git add .mlv && git commit -qm "init mlv"

python3 - <<'PY'
import os, random
rng = random.Random(7)
for i in range(500):
    folder = f"data/images/class{i % 5}"
    os.makedirs(folder, exist_ok=True)
    with open(f"{folder}/img{i:04d}.bin", "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 4096)))
with open("data/labels.csv", "w") as f:
    f.write("id,label\n" + "".join(f"{i},{i % 5}\n" for i in range(500)))
PY
echo "generated data/: 500 images and labels.csv"

step mlv add data
step cat data.mlv
step git add data.mlv .gitignore
git commit -qm "data v1"

echo; echo "# now damage the dataset: edit one file, delete another, add a stray one"
echo "oops" >> data/labels.csv
rm data/images/class0/img0000.bin
echo "stray" > data/images/stray.txt
step mlv status || true
step mlv checkout --force
step mlv status

echo; echo "# record a new version, then go back to v1 with git + mlv"
echo "501,0" >> data/labels.csv
step mlv add data
git commit -qam "data v2"
step git checkout -q HEAD~1
step mlv checkout
step tail -n 2 data/labels.csv
step mlv status

echo; echo "# share it: push to a remote (a local folder here; s3://… works the same way)"
git checkout -q main && mlv checkout -q
mkdir "$work/remote"
step mlv remote add -d store "$work/remote"
git add .mlv/config && git commit -qm "add remote"
step mlv push
step mlv push

echo; echo "# a teammate (or CI) clones the repo and pulls the exact bytes"
cd "$work" && git clone -q repo teammate && cd teammate
step mlv pull -q
step mlv status
step tail -n 1 data/labels.csv
echo; echo "demo finished: v1 -> damaged -> restored -> v2 -> v1, then pushed and pulled into a clone"
