"""Files a clone brings are read only as regular files, with size limits; YAML never
expands aliases; FIFOs and devices never hang or exhaust mlv (issue 8, defects 4, 7, 9).

Each attack is committed in an attacker's repository (git commits symlinks, not FIFOs:
those are made in the victim's clone), cloned, and run as a victim would, in a
subprocess with a timeout and a memory cap, so a hang or a memory blow-up fails the
test instead of the machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlv import yamlio
from mlv.errors import MlvError
from mlv.pipeline.stage import PipelineError
from tests.conftest import git, make_tree, run_mlv
from tests.conftest import one_error as assert_one_error

# The classic billion laughs: 9 levels of 9 aliases, 9**9 strings once expanded.
BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)
PIPELINE = """stages:
  train:
    cmd: echo trained > model.txt
    deps: [data]
    params: [lr]
    outs: [model.txt]
"""
# Every file mlv reads that a clone brings; with the commands that read it.
TARGETS = ["data.mlv", "mlv.yaml", "mlv.lock", "params.yaml", ".mlv/config"]
# The fast loop (-m "not slow") plants each attack in the first target only.
TARGETS_FAST_FIRST = [TARGETS[0], *(pytest.param(t, marks=pytest.mark.slow) for t in TARGETS[1:])]
MEMORY_CAP = 2 << 30


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def victim(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run mlv as the victim does, failing (not hanging) on a FIFO or a memory bomb."""
    return subprocess.run([sys.executable, "-m", "mlv", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=30, preexec_fn=_cap_memory)




@pytest.fixture
def attacker(mlv, mlv_repo: Path, tmp_path: Path) -> Path:  # noqa: ANN001
    """A repository with tracked data, a pipeline run once, and a folder remote.
    (Built in-process for speed; the victim's commands run in subprocesses.)"""
    make_tree(mlv_repo, {"data": "rows\n", "params.yaml": "lr: 1\n", "mlv.yaml": PIPELINE})
    remote = tmp_path / "remote"
    remote.mkdir()
    for args in (("remote", "add", "-d", "store", str(remote)), ("add", "data"),
                 ("repro",), ("push",)):
        res = mlv(*args, cwd=mlv_repo)
        assert res.exit_code == 0, res.output
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "data and pipeline")
    for args in (("status",), ("dag",)):  # the base repository itself is fine
        assert mlv(*args, cwd=mlv_repo).exit_code == 0
    return mlv_repo


def plant(attacker: Path, tmp_path: Path, name: str, make: str) -> Path:
    """Commit `name` replaced by a symlink (`make` is its target) or by text; clone.
    `make == "fifo"` replaces it by a FIFO in the clone (git cannot commit one)."""
    path = attacker / name
    if make != "fifo":
        path.unlink()
        if make.startswith("/"):
            os.symlink(make, path)
        else:
            path.write_text(make)
        git(attacker, "add", "-A")
        git(attacker, "commit", "-qm", f"evil {name}")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(attacker), str(clone))
    if make == "fifo":
        (clone / name).unlink()
        os.mkfifo(clone / name)
    return clone


@pytest.mark.parametrize("name", TARGETS_FAST_FIRST)
@pytest.mark.parametrize("make", ["fifo", "/dev/zero"])
def test_special_files_a_clone_brings_are_refused(attacker: Path, tmp_path: Path, name: str,
                                                   make: str) -> None:
    clone = plant(attacker, tmp_path, name, make)
    kind = "FIFO" if make == "fifo" else "symlink"
    assert_one_error(victim(clone, "status"), name, kind)
    if name != "data.mlv":  # `dag` reads the pipeline and the config, not pointers
        dag = victim(clone, "dag")
        if dag.returncode:
            assert_one_error(dag, name, kind)
    pull = victim(clone, "pull")
    if pull.returncode or name != "params.yaml":  # pull does not read params
        assert_one_error(pull, name, kind)


@pytest.mark.parametrize("name", TARGETS_FAST_FIRST)
def test_a_symlink_to_a_file_outside_is_not_read(attacker: Path, tmp_path: Path,
                                                 name: str) -> None:
    """A link to a well-formed file outside the repository: mlv refuses to read it."""
    outside = tmp_path / "outside"
    outside.write_bytes((attacker / name).read_bytes())
    clone = plant(attacker, tmp_path, name, str(outside))
    assert_one_error(victim(clone, "status"), name, "symlink")


def test_a_gitignore_linking_to_a_secret_is_not_copied(attacker: Path, tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n")
    clone = plant(attacker, tmp_path, ".gitignore", str(secret))
    (clone / "more").write_text("new data\n")
    proc = victim(clone, "add", "more")
    assert_one_error(proc, ".gitignore", "symlink")
    assert (clone / ".gitignore").is_symlink()  # not replaced by a copy of the secret
    assert not any("SECRET" in p.read_text(errors="replace") for p in clone.rglob("*")
                   if p.is_file() and not p.is_symlink() and ".git" not in p.parts)


def test_a_gitignore_fifo_does_not_hang_add(mlv_repo: Path) -> None:
    os.mkfifo(mlv_repo / ".gitignore")
    (mlv_repo / "data").write_text("x")
    assert_one_error(victim(mlv_repo, "add", "data"), ".gitignore", "FIFO")


def test_an_oversized_pointer_is_refused(attacker: Path, tmp_path: Path) -> None:
    text = (attacker / "data.mlv").read_text() + "#" * (1 << 20) + "\n"
    clone = plant(attacker, tmp_path, "data.mlv", text)
    assert_one_error(victim(clone, "status"), "data.mlv", "larger than 1 MiB")


def test_the_users_own_config_may_be_a_symlink(mlv_repo: Path, tmp_path: Path) -> None:
    """Dotfile managers link ~/.config/mlv/config: the user's own layer is trusted."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "config").write_text("cache:\n  type: copy\n")
    folder = Path(os.environ["HOME"]) / ".config" / "mlv"
    folder.mkdir(parents=True)
    (folder / "config").symlink_to(dotfiles / "config")
    res = run_mlv(mlv_repo, "config", "cache.type")
    assert res.exit_code == 0 and "copy" in res.stdout, res.output


def test_a_crlf_pointer_still_reads(mlv_repo: Path) -> None:
    (mlv_repo / "data").write_text("x")
    assert run_mlv(mlv_repo, "add", "data").exit_code == 0
    pointer = mlv_repo / "data.mlv"
    pointer.write_bytes(pointer.read_bytes().replace(b"\n", b"\r\n"))
    res = run_mlv(mlv_repo, "status")
    assert res.exit_code == 0, res.output


# ---- YAML bombs ---------------------------------------------------------------------

@pytest.mark.parametrize("name", TARGETS_FAST_FIRST)
def test_a_billion_laughs_fails_fast(attacker: Path, tmp_path: Path, name: str) -> None:
    clone = plant(attacker, tmp_path, name, BOMB)
    for args in (("status",), ("dag",)):
        start = time.monotonic()
        proc = victim(clone, *args)
        assert time.monotonic() - start < 10
        if args == ("dag",) and name in ("data.mlv", "mlv.lock", "params.yaml"):
            if proc.returncode == 0:
                continue  # dag does not read this file
        assert_one_error(proc, name, "aliases (&/*) are not allowed")


@pytest.mark.parametrize("text", [BOMB, "a: &a [*a]\n", "a: &a {b: *a}\n",
                                  "base: &b {x: 1}\nuse:\n  <<: *b\n", "a: &k x\nb: *k\n"])
def test_yaml_aliases_are_refused_in_linear_time(text: str) -> None:
    start = time.monotonic()
    with pytest.raises(PipelineError, match=r"f\.yaml:\d+: YAML aliases"):
        yamlio.load(text, "f.yaml", PipelineError)
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("text", ["[" * 999 + "]" * 999, "- " * 900 + "x\n",
                                  "[" * 5000 + "]" * 5000])
def test_deep_yaml_is_one_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(MlvError, match="f.yaml"):
        yamlio.load(text, "f.yaml")


def test_a_recursive_alias_in_mlv_yaml_is_one_line(mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text("stages: &s\n  a:\n    cmd: *s\n")
    proc = victim(mlv_repo, "dag")
    assert_one_error(proc, "mlv.yaml:3", "aliases")


def test_line_numbers_are_kept(tmp_path: Path) -> None:
    data, lines = yamlio.load("a: 1\nb:\n  - x\n  - {y: 2}\n", "f.yaml")
    assert data == {"a": 1, "b": ["x", {"y": 2}]}
    assert lines == {(): 1, ("a",): 1, ("b",): 2, ("b", 0): 3, ("b", 1): 4, ("b", 1, "y"): 4}


# ---- FIFOs in `mlv add` -------------------------------------------------------------

def test_add_refuses_a_fifo(mlv_repo: Path) -> None:
    os.mkfifo(mlv_repo / "pipe")
    assert_one_error(victim(mlv_repo, "add", "pipe"), "pipe", "FIFO")
    assert not (mlv_repo / "pipe.mlv").exists()


def test_add_folder_skips_a_fifo_inside(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"data": {"a.txt": "a"}})
    os.mkfifo(mlv_repo / "data" / "pipe")
    proc = victim(mlv_repo, "add", "data")
    assert proc.returncode == 0, proc.stderr
    assert "nfiles: 1" in (mlv_repo / "data.mlv").read_text()


def test_add_replaces_a_fifo_where_its_pointer_goes(mlv_repo: Path) -> None:
    (mlv_repo / "data").write_text("x")
    os.mkfifo(mlv_repo / "data.mlv")
    proc = victim(mlv_repo, "add", "data")
    assert proc.returncode == 0, proc.stderr
    assert (mlv_repo / "data.mlv").is_file()


def test_a_tracked_file_swapped_for_a_fifo_does_not_hang_status(mlv_repo: Path) -> None:
    (mlv_repo / "data").write_text("x")
    assert run_mlv(mlv_repo, "add", "data").exit_code == 0
    (mlv_repo / "data").unlink()
    os.mkfifo(mlv_repo / "data")
    proc = victim(mlv_repo, "status")
    # Like any other thing standing where the tracked file goes (a folder, say): the
    # tracked file is not there, and checkout needs --force to replace what is.
    assert proc.returncode == 0 and "data (data.mlv): deleted" in proc.stdout, proc.stderr


# ---- metrics, and outputs the `symlink` cache type placed -----------------------------

METRICS_STAGE = """stages:
  score:
    cmd: echo '{"acc":0.9}' > scores.json
    params: [lr]
    metrics: [scores.json]
"""


def test_metrics_linking_outside_are_not_shown(mlv_repo: Path, tmp_path: Path) -> None:
    """In CI, `mlv metrics show` prints into a public log: a committed link to a JSON
    secret on the runner must not be read."""
    secret = tmp_path / "token.json"
    secret.write_text('{"token": "SECRET"}')
    make_tree(mlv_repo, {"mlv.yaml": METRICS_STAGE, "params.yaml": "lr: 1\n"})
    os.symlink(secret, mlv_repo / "scores.json")
    proc = victim(mlv_repo, "metrics", "show")
    assert_one_error(proc, "scores.json", "symlink")
    assert "SECRET" not in proc.stdout + proc.stderr


def test_outputs_linked_into_the_cache_are_read(mlv_repo: Path) -> None:
    """With cache.type symlink, a cached metric is a link into the cache: still shown."""
    make_tree(mlv_repo, {"mlv.yaml": METRICS_STAGE, "params.yaml": "lr: 1\n"})
    for args in (("config", "cache.type", "symlink"), ("repro",)):
        assert run_mlv(mlv_repo, *args).exit_code == 0
    (mlv_repo / "scores.json").unlink()
    assert run_mlv(mlv_repo, "checkout").exit_code == 0
    assert (mlv_repo / "scores.json").is_symlink()
    res = run_mlv(mlv_repo, "metrics", "show")
    assert res.exit_code == 0 and "0.9" in res.stdout, res.output


def test_stage_add_does_not_hang_on_a_fifo_pipeline(mlv_repo: Path) -> None:
    os.mkfifo(mlv_repo / "mlv.yaml")
    proc = victim(mlv_repo, "stage", "add", "-n", "s", "-o", "o.txt", "echo hi > o.txt")
    assert_one_error(proc, "mlv.yaml", "FIFO")


@pytest.mark.parametrize("text", ["size: " + "9" * 5000, "nfiles: 2001-02-31",
                                  "a: !!timestamp 2001-13-01"])
def test_values_python_cannot_build_are_one_error(text: str) -> None:
    with pytest.raises(MlvError, match="invalid YAML value"):
        yamlio.load(text, "x.mlv")


def test_a_huge_integer_in_a_pointer_is_one_line(mlv_repo: Path) -> None:
    (mlv_repo / "d.mlv").write_text(
        "outs:\n- path: d\n  xxh128: " + "0" * 32 + "\n  size: " + "9" * 5000 + "\n")
    res = run_mlv(mlv_repo, "status")
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error: d.mlv: invalid YAML value"), res.stderr
    assert "Traceback" not in res.stderr
