#!/usr/bin/env bash
# The CI/CD loop of .github/workflows/mlv.yml, run locally with no network:
# a bare git repository plays GitHub ("origin"), a folder plays the S3 bucket, and each
# CI job runs in a fresh clone, as on a runner.
#
#   examples/ci/ci-flow.sh WORK_DIR        # WORK_DIR: an empty or new folder
#   MLV="python -m mlv" examples/ci/ci-flow.sh /tmp/ci-demo
#
# Day 1: a developer starts the project and pushes it (the `main` job pushes the data
# and deploys the model the pipeline recorded). A pull request tunes a param: `mlv ci`
# fails until its data is pushed, then passes and writes the report that the
# `pull_request` job posts as a comment. It is merged. A second pull request makes the
# model worse: the gate `accuracy >= base - 0.01` fails and `mlv ci` exits 1. Day 2: the
# nightly job adds the day's data; `mlv ci` reproduces the stale stages and gates them
# against main; the job pushes a branch for a pull request. Needs git, python3 and mlv.
set -eu

MLV=${MLV:-mlv}
if [ "$#" -ne 1 ]; then
    echo "usage: $0 WORK_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
work=$(cd "$1" && pwd)
if [ -n "$(ls -A "$work")" ]; then
    echo "error: $work is not empty" >&2
    exit 2
fi

export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-mlv ci example}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-ci@example.com}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"

# `command`: the mlv on PATH, not this function (which would call itself forever)
mlv() { command $MLV "$@"; }   # $MLV unquoted on purpose: it may be `python -m mlv`
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# expect_fail WHY REPORT: `mlv ci` must exit 1 (a check or gate failed) for reason WHY
expect_fail() {
    code=0
    run mlv ci --base origin/main --report "$2" || code=$?
    if [ "$code" -ne 1 ]; then
        echo "error: expected mlv ci to exit 1 on $1, it exited $code" >&2
        exit 1
    fi
}
# A CI runner: a fresh clone of origin at BRANCH, no mlv cache.
runner() {
    rm -rf "$work/$1"
    git clone -q -b "$2" "$work/origin.git" "$work/$1"
    cd "$work/$1"
}
set_offset() {
    python3 -c 'import json, sys
p = json.load(open("params.json")); p["train"]["offset"] = float(sys.argv[1])
open("params.json", "w").write(json.dumps(p, indent=2) + "\n")' "$1"
}

say "setup: origin (a bare git repository) and storage (the data remote) in $work"
git init -q --bare -b main "$work/origin.git"
mkdir "$work/storage" "$work/reports"

say "day 1: the developer starts the project"
git init -q -b main "$work/dev"
cd "$work/dev"
cp -R "$here/mlv.yaml" "$here/params.json" "$here/src" "$here/.github" .
git remote add origin "$work/origin.git"
run mlv init
run mlv remote add -d storage "$work/storage"
run python3 src/new_data.py 2026-12-01
run mlv add data/raw
run mlv repro
git add -A
git commit -q -m "Pipeline and the data of 2026-12-01"
run git push -q origin main

say "main job (push to main): upload the data, then deploy the model mlv.lock records"
run mlv push
runner deploy main
run mlv pull models/model.json
run cat models/model.json
echo "deploy: ./deploy.sh models/model.json (a placeholder)"

say "pull request 1: tune train.offset (0 -> 3)"
cd "$work/dev"
git checkout -q -b tune-offset
set_offset 3
run mlv repro
git commit -q -am "Tune train.offset"
run git push -q origin tune-offset

say "pull_request job: mlv ci on a fresh runner; the developer forgot \`mlv push\`"
runner ci-pr tune-offset
expect_fail "data that was not pushed" "$work/reports/not-pushed.md"
echo "mlv ci exited 1: the new model is not on the remote"

say "the developer pushes the data; the pull_request job runs again"
cd "$work/dev"
run mlv push
runner ci-pr tune-offset
run mlv ci --base origin/main --report "$work/reports/pr.md"
echo "(gh pr comment --body-file report.md: skipped, no network)"

say "the pull request is merged"
cd "$work/dev"
git checkout -q main
git merge -q --ff-only tune-offset
run git push -q origin main
run mlv push

say "pull request 2: a change that makes the model worse (train.offset 3 -> 9)"
git checkout -q -b worse-offset
set_offset 9
run mlv repro
git commit -q -am "Move the threshold up"
run mlv push
run git push -q origin worse-offset
runner ci-worse worse-offset
expect_fail "the failing gate" "$work/reports/worse.md"
echo "mlv ci exited 1: the gate stops this pull request (as the CI job would)"

say "day 2, nightly job: add the day's data, reproduce, gate against main, propose it"
runner nightly main
run mlv pull data/raw
run python3 src/new_data.py 2026-12-02
run mlv add data/raw
run mlv ci --base origin/main --report "$work/reports/nightly.md"   # runs the stale stages
git checkout -q -b nightly/2026-12-02
git add -A
git commit -q -m "Nightly: data of 2026-12-02, retrained"
run mlv push --run-cache
run git push -q origin nightly/2026-12-02
echo "(gh pr create --base main --head nightly/2026-12-02: skipped, no network)"

say "done: reports in $work/reports, branches in origin:"
git -C "$work/origin.git" branch --format='  %(refname:short)'
