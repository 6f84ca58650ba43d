"""`mlv migrate dvc`: a DVC project converted in place, then used with mlv."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_tree, one_error, read_tree, run_mlv

DATA = b"<xml>" + b"row\n" * 5000 + b"</xml>\n"
IMAGES = {"a.png": b"\x89PNG a", "sub/b.png": b"\x89PNG bb"}
PARAMS = "prepare:\n  n: 3\ntrain:\n  seed: 7\n"
DVC_YAML = """\
# the team's pipeline: comments stay
stages:
  prepare:
    cmd:
    - mkdir -p prepared
    - cat data/data.xml images/a.png > prepared/all.txt
    - echo ${prepare.n} > prepared/n.txt
    - echo prepare >> ../ran.log
    deps:
    - data/data.xml
    - images
    params:
    - prepare.n
    outs:
    - prepared
  train:
    cmd: cat prepared/all.txt > model.bin && echo 1 > metrics.json && echo train >> ../ran.log
    deps:
    - prepared
    params:
    - train.seed
    outs:
    - model.bin
    metrics:
    - metrics.json:
        cache: false
"""
SECRET = "SuperSecretKey123"
LOCAL_SECRET = "LocalKeyId456"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def dvc_object(root: Path, data: bytes, suffix: str = "") -> str:
    """Put `data` in a DVC 3 cache by hand; returns its md5 (with `suffix`)."""
    digest = md5(data) + suffix
    path = root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def dvc_dir(root: Path, files: dict[str, bytes]) -> str:
    """A folder's `.dir` object as DVC writes it (and its files) in the cache."""
    listing = sorted(({"md5": dvc_object(root, data), "relpath": rel}
                      for rel, data in files.items()), key=lambda item: item["relpath"])
    return dvc_object(root, json.dumps(listing, sort_keys=True).encode(), ".dir")


def files_md5(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def out_entry(root: Path, rel: str, cache: bool = True) -> dict[str, object]:
    path = root / rel
    if path.is_dir():
        files = files_md5(path)
        digest = dvc_dir(root, files)
        return {"path": rel, "hash": "md5", "md5": digest,
                "size": sum(map(len, files.values())), "nfiles": len(files)}
    data = path.read_bytes()
    digest = dvc_object(root, data) if cache else md5(data)
    return {"path": rel, "hash": "md5", "md5": digest, "size": len(data)}


def make_dvc_project(repo: Path, remote: Path) -> None:
    """A DVC 3 project as `dvc add` and `dvc repro` leave it, built by hand: data/data.xml
    only in DVC's cache, images/ in the workspace and the cache, two stages run."""
    make_tree(repo, {
        ".dvc": {"config": f"[core]\n    remote = store\n['remote \"store\"']\n"
                           f"    url = {remote}\n    secret_access_key = {SECRET}\n"
                           "    region = eu-west-1\n",
                 "config.local": f"['remote \"store\"']\n    access_key_id = {LOCAL_SECRET}\n",
                 ".gitignore": "/config.local\n/tmp\n/cache\n"},
        "data": {"data.xml": DATA, ".gitignore": "/data.xml\n"},
        "images": {"a.png": IMAGES["a.png"], "sub": {"b.png": IMAGES["sub/b.png"]}},
        "params.yaml": PARAMS, "dvc.yaml": DVC_YAML,
        ".gitignore": "/prepared\n/model.bin\n",  # the line for images/ was lost
    })
    xml = dvc_object(repo, DATA)
    (repo / "data" / "data.xml.dvc").write_text(
        f"outs:\n- md5: {xml}\n  size: {len(DATA)}\n  hash: md5\n  path: data.xml\n")
    images = dvc_dir(repo, IMAGES)
    (repo / "images.dvc").write_text(
        f"outs:\n- md5: {images}\n  size: 13\n  nfiles: 2\n  hash: md5\n  path: images\n")
    for cmd in ("mkdir -p prepared && cat data/data.xml images/a.png > prepared/all.txt && "
                "echo 3 > prepared/n.txt", "cat prepared/all.txt > model.bin && echo 1 > "
                "metrics.json"):
        subprocess.run(cmd, shell=True, cwd=repo, check=True)
    prepare_cmd = ["mkdir -p prepared", "cat data/data.xml images/a.png > prepared/all.txt",
                   "echo 3 > prepared/n.txt", "echo prepare >> ../ran.log"]  # a list in DVC
    train_cmd = next(line.split("cmd: ", 1)[1] for line in DVC_YAML.splitlines()
                     if "cmd: " in line)
    lock = {"schema": "2.0", "stages": {
        "prepare": {"cmd": prepare_cmd,
                    "deps": [out_entry(repo, "data/data.xml"), out_entry(repo, "images")],
                    "params": {"params.yaml": {"prepare.n": 3}},
                    "outs": [out_entry(repo, "prepared")]},
        "train": {"cmd": train_cmd, "deps": [out_entry(repo, "prepared")],
                  "params": {"params.yaml": {"train.seed": 7}},
                  "outs": [out_entry(repo, "metrics.json", cache=False),
                           out_entry(repo, "model.bin")]}}}
    (repo / "dvc.lock").write_text(json.dumps(lock, indent=1))  # JSON is YAML
    # as after `git clone` + `dvc fetch`: some bytes only in DVC's cache
    (repo / "data" / "data.xml").unlink()
    (repo / "model.bin").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a DVC project")


def dvc_files(repo: Path) -> dict[str, bytes]:
    return {rel: data for rel, data in read_tree(repo).items()
            if rel.startswith(".dvc/") or rel.endswith(".dvc") or rel.startswith("dvc.")}


def files_but_state(repo: Path) -> dict[str, bytes]:
    return {k: v for k, v in read_tree(repo).items()
            if not k.startswith((".mlv/tmp/", ".git/"))}


@pytest.fixture
def dvc_project(git_repo: Path, tmp_path: Path) -> Path:
    remote = tmp_path / "dvc-remote"
    remote.mkdir()
    make_dvc_project(git_repo, remote)
    return git_repo


def test_dry_run_prints_each_change_and_writes_nothing(dvc_project: Path, mlv) -> None:
    before = read_tree(dvc_project)
    res = mlv("migrate", "dvc", "--dry", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    out = res.stdout
    for line in ("would run `mlv init`", "would write data/data.xml.mlv",
                 "would write images.mlv", "would write mlv.yaml", "would write mlv.lock",
                 "would add remote store", "nothing was written (--dry)"):
        assert line in out, out
    assert "would skip secret remote store (secret_access_key" in out
    assert "would skip secret remote store (access_key_id from .dvc/config.local" in out
    assert SECRET not in res.output and LOCAL_SECRET not in res.output
    assert read_tree(dvc_project) == before
    assert not (dvc_project / ".mlv").exists()


def test_converted_project_checks_out_is_clean_and_runs_nothing(
        dvc_project: Path, mlv, tmp_path: Path) -> None:
    before = dvc_files(dvc_project)
    res = mlv("migrate", "dvc", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert "initialized mlv" in res.stdout
    assert "wrote data/data.xml.mlv (from data/data.xml.dvc, bytes from DVC's cache)" \
        in res.stdout
    assert "wrote images.mlv (from images.dvc, bytes from the workspace)" in res.stdout
    assert "wrote mlv.lock (2 of 2 stages from dvc.lock)" in res.stdout
    assert "git add" in res.stdout and "mlv status" in res.stdout
    assert "mlv checkout` restores 1 path" in res.stdout
    # mlv.yaml is dvc.yaml's text, comments and all
    assert (dvc_project / "mlv.yaml").read_text() == DVC_YAML
    # every converted out is git-ignored; DVC's files are untouched
    assert "/images" in (dvc_project / ".gitignore").read_text().splitlines()
    assert "updated .gitignore" in res.stdout
    assert dvc_files(dvc_project) == before
    # the data comes back from mlv's cache: DVC's is not needed any more
    shutil.rmtree(dvc_project / ".dvc" / "cache")
    res = mlv("checkout", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert (dvc_project / "data" / "data.xml").read_bytes() == DATA
    assert (dvc_project / "model.bin").read_bytes() == DATA + IMAGES["a.png"]
    res = mlv("status", cwd=dvc_project)
    assert res.exit_code == 0 and "stale" not in res.output and "modified" not in res.output, \
        res.output
    res = mlv("repro", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert "everything is up to date" in res.stdout
    assert not (tmp_path / "ran.log").exists()
    # secrets stay out of mlv's config; the remote is a new place beside DVC's
    config = (dvc_project / ".mlv" / "config").read_text()
    assert SECRET not in config and LOCAL_SECRET not in config
    assert not (dvc_project / ".mlv" / "config.local").exists()
    assert f"url: {tmp_path / 'dvc-remote'}-mlv" in config
    assert "region: eu-west-1" in config and "remote: store" in config
    status = git(dvc_project, "status", "--porcelain", "--untracked-files=all")
    assert "data.xml\n" not in status and "model.bin" not in status, status
    assert "images/" not in status, status


def test_second_run_changes_nothing_and_a_changed_param_reruns(
        dvc_project: Path, mlv, tmp_path: Path) -> None:
    assert mlv("migrate", "dvc", cwd=dvc_project).exit_code == 0
    written = files_but_state(dvc_project)
    res = mlv("migrate", "dvc", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert "unchanged mlv.lock" in res.stdout and "kept remote store" in res.stdout
    assert "wrote" not in res.stdout
    assert files_but_state(dvc_project) == written
    (dvc_project / "params.yaml").write_text(PARAMS.replace("seed: 7", "seed: 8"))
    assert mlv("checkout", cwd=dvc_project).exit_code == 0
    res = mlv("repro", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ran.log").read_text() == "train\n"


def test_an_out_in_neither_place_is_reported_and_gets_no_pointer(dvc_project: Path,
                                                                  mlv) -> None:
    for obj in (dvc_project / ".dvc" / "cache").rglob("*"):
        if obj.is_file() and obj.read_bytes() == DATA:
            obj.unlink()
    res = mlv("migrate", "dvc", cwd=dvc_project)
    one_error(res, "data/data.xml", "neither the workspace nor DVC's cache")
    assert "dvc pull" in res.stderr
    assert not (dvc_project / "data" / "data.xml.mlv").exists()
    assert (dvc_project / "images.mlv").exists()
    assert "stage prepare: dep data/data.xml is not as dvc.lock records it" in res.stdout


def test_a_damaged_object_in_dvcs_cache_is_not_used(dvc_project: Path, mlv) -> None:
    digest = md5(DATA)
    obj = dvc_project / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    obj.write_bytes(DATA.replace(b"row", b"ROW"))
    res = mlv("migrate", "dvc", cwd=dvc_project)
    one_error(res, "data/data.xml")
    assert not (dvc_project / "data" / "data.xml.mlv").exists()


def test_a_modified_workspace_copy_is_converted_from_dvcs_cache(dvc_project: Path,
                                                                mlv) -> None:
    (dvc_project / "images" / "a.png").write_bytes(b"edited")
    res = mlv("migrate", "dvc", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert "wrote images.mlv (from images.dvc, bytes from DVC's cache)" in res.stdout
    res = mlv("status", cwd=dvc_project)
    assert "images (images.mlv): modified" in res.stdout, res.output


def test_a_dvc_import_becomes_plain_tracked_data(git_repo: Path, mlv) -> None:
    make_tree(git_repo, {".dvc": {"config": ""}, "raw.csv": "a,b\n1,2\n"})
    digest = md5(b"a,b\n1,2\n")
    (git_repo / "raw.csv.dvc").write_text(
        "md5: 0123\nfrozen: true\ndeps:\n- path: data/raw.csv\n  repo:\n"
        "    url: https://github.com/example/registry\n    rev_lock: abc123\n"
        f"outs:\n- md5: {digest}\n  size: 8\n  hash: md5\n  path: raw.csv\n")
    res = mlv("migrate", "dvc", cwd=git_repo)
    assert res.exit_code == 0, res.output
    assert "was a `dvc import` from https://github.com/example/registry (frozen)" in res.stdout
    assert "mlv has no imports yet" in res.stdout
    assert "xxh128:" in (git_repo / "raw.csv.mlv").read_text()
    assert mlv("status", cwd=git_repo).exit_code == 0


def test_a_dvc2_cache_and_its_crlf_text_hash(git_repo: Path, mlv) -> None:
    """DVC 2 kept objects at .dvc/cache/ab/cdef and hashed text files CRLF -> LF."""
    text = b"line one\r\nline two\r\n"
    legacy = md5(text.replace(b"\r\n", b"\n"))
    obj = git_repo / ".dvc" / "cache" / legacy[:2] / legacy[2:]
    obj.parent.mkdir(parents=True)
    obj.write_bytes(text)
    (git_repo / ".dvc" / "config").write_text("")
    (git_repo / "notes.txt.dvc").write_text(
        f"outs:\n- md5: {legacy}\n  size: {len(text)}\n  path: notes.txt\n")
    res = mlv("migrate", "dvc", cwd=git_repo)
    assert res.exit_code == 0, res.output
    assert "wrote notes.txt.mlv (from notes.txt.dvc, bytes from DVC's cache)" in res.stdout
    assert mlv("checkout", cwd=git_repo).exit_code == 0
    assert (git_repo / "notes.txt").read_bytes() == text


def test_outside_a_dvc_repository_is_one_error(git_repo: Path, mlv) -> None:
    res = mlv("migrate", "dvc", cwd=git_repo)
    one_error(res, "not inside a DVC repository")
    assert not (git_repo / ".mlv").exists()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", ".git/config"])
def test_a_dvc_file_whose_path_leaves_the_repository_is_refused(git_repo: Path, mlv,
                                                                bad: str) -> None:
    make_tree(git_repo, {".dvc": {"config": ""}, "data": {}, "dvc.yaml": "stages: {}\n"})
    (git_repo / "data" / "evil.dvc").write_text(
        f"outs:\n- md5: {md5(b'x')}\n  size: 1\n  hash: md5\n  path: {bad}\n")
    outside = git_repo.parent / "etc"
    res = mlv("migrate", "dvc", cwd=git_repo)
    one_error(res, "data/evil.dvc")
    assert not (git_repo / ".mlv").exists() and not (git_repo / "mlv.yaml").exists()
    assert not outside.exists()
    assert not list(git_repo.parent.rglob("*.mlv"))


def test_a_secret_in_a_remote_url_is_not_copied(git_repo: Path, mlv) -> None:
    make_tree(git_repo, {".dvc": {"config": "['remote \"web\"']\n"
                                            "    url = https://user:hunter2@example.com/x\n"}})
    res = mlv("migrate", "dvc", cwd=git_repo)
    assert res.exit_code == 0, res.output
    assert "skipped secret remote web (its url holds a password" in res.stdout
    assert "hunter2" not in res.output
    assert "hunter2" not in (git_repo / ".mlv" / "config").read_text()


def test_top_level_metrics_and_vars(dvc_project: Path, mlv, tmp_path: Path) -> None:
    text = DVC_YAML.replace("stages:\n", "vars:\n- params.yaml\nstages:\n", 1) + \
        "metrics:\n- metrics.json\n"
    (dvc_project / "dvc.yaml").write_text(text)
    git(dvc_project, "commit", "-qam", "top-level keys")
    res = mlv("migrate", "dvc", cwd=dvc_project)
    assert res.exit_code == 0, res.output
    assert mlv("checkout", cwd=dvc_project).exit_code == 0
    res = mlv("repro", cwd=dvc_project)
    assert res.exit_code == 0 and "everything is up to date" in res.stdout, res.output
    assert not (tmp_path / "ran.log").exists()


# ---- with the real `dvc` ---------------------------------------------------------------

@pytest.fixture(scope="session")
def dvc_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with DVC installed (from the configured package index)."""
    venv = tmp_path_factory.mktemp("dvc-venv")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "dvc"],
                       check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot install dvc: {exc} {detail.decode(errors='replace')[-300:]}")
    return venv / "bin"


@pytest.mark.slow
def test_a_project_made_by_real_dvc(dvc_bin: Path, git_repo: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{dvc_bin}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}

    def dvc(*args: str) -> str:
        out = subprocess.run(["dvc", *args], cwd=git_repo, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    dvc("init", "-q")
    dvc("config", "core.check_update", "false")
    make_tree(git_repo, {"data": {"data.xml": DATA}, "params.yaml": PARAMS, "dvc.yaml": DVC_YAML,
                         "images": {"a.png": IMAGES["a.png"],
                                    "sub": {"b.png": IMAGES["sub/b.png"]}}})
    dvc("add", "-q", "data/data.xml", "images")
    dvc("repro", "-q")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "a DVC project")
    assert "up to date" in dvc("status")
    (tmp_path / "ran.log").unlink()

    res = run_mlv(git_repo, "migrate", "dvc")
    assert res.exit_code == 0, res.output
    assert "wrote mlv.lock (2 of 2 stages from dvc.lock)" in res.stdout
    assert "note:" not in res.stdout, res.stdout
    res = run_mlv(git_repo, "status")
    assert res.exit_code == 0 and "stale" not in res.output, res.output
    res = run_mlv(git_repo, "repro")
    assert res.exit_code == 0 and "everything is up to date" in res.stdout, res.output
    assert not (tmp_path / "ran.log").exists()
    (git_repo / "params.yaml").write_text(PARAMS.replace("n: 3", "n: 4"))
    res = run_mlv(git_repo, "repro")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ran.log").read_text() == "prepare\ntrain\n"
    assert (git_repo / "prepared" / "n.txt").read_text() == "4\n"
