"""End to end: the real `mlv` in a subprocess, inside a real git repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mlv as mlv_pkg
from tests.conftest import cache_objects, git, make_tree, read_tree, run_mlv

COMMANDS = {"init", "add", "status", "checkout", "remove", "move", "gc", "config"}
HEAVY = ("git", "s3fs", "fsspec", "sklearn", "boto3", "botocore", "aiobotocore")


def ok(res) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output


def listed_commands() -> set[str]:
    """The commands `mlv --help` lists (empty if it fails: the help test then says why)."""
    res = run_mlv(Path.cwd(), "--help")
    if res.exit_code != 0 or "Commands:" not in res.stdout:
        return set()
    section = res.stdout.split("Commands:", 1)[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ")}


# ---- the command line itself ---------------------------------------------------------

def test_version(tmp_path: Path) -> None:
    for flag in ("--version", "-V"):
        res = run_mlv(tmp_path, flag)
        ok(res)
        assert res.stdout == f"mlv {mlv_pkg.__version__}\n"
        assert res.stderr == ""


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mlv", "--version"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, f"mlv {mlv_pkg.__version__}\n")
    script = Path(sys.executable).parent / "mlv"
    if not script.exists():
        pytest.skip("no `mlv` console script next to this Python")
    proc = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert (proc.returncode, proc.stdout) == (0, f"mlv {mlv_pkg.__version__}\n")


def test_help_lists_every_command(tmp_path: Path) -> None:
    res = run_mlv(tmp_path, "--help")
    ok(res)
    assert res.stdout.startswith("Usage: mlv ")
    assert COMMANDS <= listed_commands()
    assert run_mlv(tmp_path, "-h").stdout == res.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS | listed_commands()))
def test_every_command_has_help_with_an_example(tmp_path: Path, command: str) -> None:
    res = run_mlv(tmp_path, command, "--help")
    ok(res)
    assert res.stdout.startswith(f"Usage: mlv {command} ")
    lines = res.stdout.splitlines()
    at = [i for i, line in enumerate(lines) if line.strip() == "Example:"]
    assert at, res.stdout
    example = lines[at[0] + 1].strip()
    assert example.startswith("mlv ") or example.startswith("git "), example
    assert f"mlv {command}" in res.stdout.split("Example:", 1)[1]


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    res = run_mlv(tmp_path, "frobnicate")
    assert res.exit_code == 2
    assert "frobnicate" in res.stderr
    res = run_mlv(tmp_path, "status", "--no-such-flag")
    assert res.exit_code == 2
    assert "--no-such-flag" in res.stderr
    assert "Traceback" not in res.output


@pytest.mark.slow
def test_commands_outside_a_repository(tmp_path: Path) -> None:
    for args in (["status"], ["add", "x"], ["checkout"], ["gc", "-w"], ["remove", "x"],
                 ["move", "a", "b"]):
        res = run_mlv(tmp_path, *args)
        assert res.exit_code == 1, (args, res.output)
        assert res.stderr.splitlines()[0] == "error: not inside an mlv repository", args
        assert "mlv init" in res.stderr
        assert "Traceback" not in res.output


# ---- no heavy imports on the fast paths ----------------------------------------------

def imported_modules(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlv", *args], cwd=cwd,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "mlv" in names  # the report itself worked
    return proc, names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


@pytest.fixture
def small_repo(mlv_repo: Path) -> Path:
    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"{i}\n" for i in range(20)},
                         "model.pkl": b"m"})
    ok(run_mlv(mlv_repo, "add", "data", "model.pkl"))
    return mlv_repo


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["status"], ["status", "--json"],
                                  ["status", "-q"], ["status", "data"], ["add", "--help"]])
def test_fast_paths_do_not_import_heavy_modules(small_repo: Path, args: list[str]) -> None:
    proc, names = imported_modules(small_repo, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy(names) == []


def test_status_of_a_changed_workspace_does_not_import_heavy_modules(small_repo: Path) -> None:
    (small_repo / "data" / "f3.txt").write_text("changed\n")
    (small_repo / "model.pkl").unlink()
    proc, names = imported_modules(small_repo, "status")
    assert "data (data.mlv): modified" in proc.stdout
    assert heavy(names) == []


def test_push_and_pull_with_a_folder_remote_import_no_network_library(
        small_repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    ok(run_mlv(small_repo, "remote", "add", "-d", "store", str(store)))
    network = HEAVY + ("asyncio", "aiohttp")
    for args in (["push"], ["push"], ["pull"]):  # the second push has nothing to send
        proc, names = imported_modules(small_repo, *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert sorted(n for n in names if n.split(".")[0] in network) == []


# ---- every command, end to end -------------------------------------------------------

def test_init(git_repo: Path, tmp_path: Path) -> None:
    res = run_mlv(git_repo, "init")
    ok(res)
    assert "initialized mlv" in res.stdout
    assert (git_repo / ".mlv" / "config").is_file()
    assert git(git_repo, "status", "--porcelain", "-uall").splitlines() == [
        "?? .mlv/.gitignore", "?? .mlv/config"]

    again = run_mlv(git_repo, "init")
    ok(again)
    assert "already initialized" in again.stdout

    plain = tmp_path / "plain"
    plain.mkdir()
    res = run_mlv(plain, "init")
    assert res.exit_code == 1
    assert "git" in res.stderr and "--no-scm" in res.stderr
    assert not (plain / ".mlv").exists()
    ok(run_mlv(plain, "init", "--no-scm"))
    assert (plain / ".mlv").is_dir()


def test_init_in_a_subfolder_of_a_git_repo_is_refused(git_repo: Path) -> None:
    (git_repo / "sub").mkdir()
    res = run_mlv(git_repo / "sub", "init")
    assert res.exit_code == 1
    assert "root of the git work tree" in res.stderr
    assert not (git_repo / "sub" / ".mlv").exists()


@pytest.mark.slow
def test_add_status_checkout_remove_move_gc_config(mlv_repo: Path) -> None:
    repo = mlv_repo
    make_tree(repo, {"data": {"a.csv": "x,y\n1,2\n", "img": {"1.png": os.urandom(3000)}},
                     "model.pkl": os.urandom(500)})
    original = read_tree(repo / "data")

    res = run_mlv(repo, "add", "data", "model.pkl")
    ok(res)
    assert res.stdout.splitlines() == [
        "added data (2 files, 2.9 KiB) -> data.mlv",
        "added model.pkl (500 B) -> model.pkl.mlv",
        "to track the change with git, run: git add data.mlv model.pkl.mlv .gitignore",
    ]
    ok(run_mlv(repo, "status"))
    assert run_mlv(repo, "status").stdout == "everything is up to date\n"

    (repo / "data" / "a.csv").write_text("x,y\n9,9\n")
    res = run_mlv(repo, "status")
    ok(res)
    assert res.stdout.splitlines()[:2] == ["data (data.mlv): modified", "    modified: a.csv"]
    res = run_mlv(repo, "checkout")
    assert res.exit_code == 1
    assert "data/a.csv" in res.stderr and "--force" in res.stderr
    res = run_mlv(repo, "checkout", "--force", "-v", "data")
    ok(res)
    assert res.stdout.splitlines() == ["M data/a.csv",
                                       "0 added, 1 modified, 0 deleted, 8 B written"]
    assert read_tree(repo / "data") == original

    res = run_mlv(repo, "config", "cache.type", "hardlink")
    ok(res)
    assert run_mlv(repo, "config", "cache.type").stdout == "hardlink\n"
    ok(run_mlv(repo, "checkout", "--relink"))
    obj = cache_objects(repo)
    assert any(os.path.samefile(repo / "model.pkl", p) for p in obj.values())

    res = run_mlv(repo, "move", "model.pkl", "models/model.pkl")
    ok(res)
    assert res.stdout == "moved model.pkl -> models/model.pkl (models/model.pkl.mlv)\n"
    assert (repo / "models" / ".gitignore").read_text() == "/model.pkl\n"

    res = run_mlv(repo, "remove", "models/model.pkl.mlv", "--outs")
    ok(res)
    assert res.stdout == "removed models/model.pkl.mlv and models/model.pkl\n"
    assert not (repo / "models" / "model.pkl").exists()

    res = run_mlv(repo, "gc", "--workspace", "--dry")
    ok(res)
    assert res.stdout.splitlines()[-1] == "would delete 1 object, freeing 500 B; 3 kept"
    assert len(cache_objects(repo)) == 4
    res = run_mlv(repo, "gc", "--workspace")
    ok(res)
    assert res.stdout == "deleted 1 object, freed 500 B; 3 kept\n"
    assert len(cache_objects(repo)) == 3
    assert run_mlv(repo, "status").stdout == "everything is up to date\n"

    res = run_mlv(repo, "gc")
    assert res.exit_code == 2
    assert "--workspace" in res.stderr


def test_status_quiet_exit_codes(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"data": {"a": b"a"}})
    ok(run_mlv(mlv_repo, "add", "data"))
    res = run_mlv(mlv_repo, "status", "-q")
    assert (res.exit_code, res.output) == (0, "")
    (mlv_repo / "data" / "a").write_bytes(b"b")
    res = run_mlv(mlv_repo, "status", "-q")
    assert (res.exit_code, res.output) == (1, "")


def test_status_json_is_valid_json(mlv_repo: Path) -> None:
    import json

    make_tree(mlv_repo, {"données": {"é.txt": b"a"}})
    ok(run_mlv(mlv_repo, "add", "données"))
    (mlv_repo / "données" / "é.txt").unlink()
    res = run_mlv(mlv_repo, "status", "--json")
    ok(res)
    assert json.loads(res.stdout) == {"données": {
        "pointer": "données.mlv", "changes": ["modified"],
        "files": {"added": [], "modified": [], "deleted": ["é.txt"]}}}


@pytest.mark.slow
def test_git_workflow_restores_each_version_exactly(mlv_repo: Path) -> None:
    repo = mlv_repo
    v1 = {"data": {"train.csv": os.urandom(10000), "nested": {"x.bin": os.urandom(77)},
                   "gone-in-v2.txt": b"only in v1"},
          "model.pkl": os.urandom(2000)}
    make_tree(repo, v1)
    data_v1, model_v1 = read_tree(repo / "data"), (repo / "model.pkl").read_bytes()
    res = run_mlv(repo, "add", "data", "model.pkl")
    ok(res)
    git(repo, "add", "data.mlv", "model.pkl.mlv", ".gitignore")
    git(repo, "commit", "-qm", "data v1")
    assert git(repo, "status", "--porcelain") == ""

    (repo / "data" / "gone-in-v2.txt").unlink()
    make_tree(repo, {"data": {"train.csv": os.urandom(12000), "new-in-v2": {"y": b"y"}},
                     "model.pkl": os.urandom(2100)})
    data_v2, model_v2 = read_tree(repo / "data"), (repo / "model.pkl").read_bytes()
    ok(run_mlv(repo, "add", "data", "model.pkl"))
    git(repo, "commit", "-qam", "data v2")

    git(repo, "checkout", "-q", "HEAD~1")
    st = run_mlv(repo, "status")
    assert st.stdout.startswith("data (data.mlv): modified"), st.output
    res = run_mlv(repo, "checkout")
    ok(res)
    assert read_tree(repo / "data") == data_v1
    assert (repo / "model.pkl").read_bytes() == model_v1
    assert not (repo / "data" / "new-in-v2").exists()
    assert run_mlv(repo, "status").stdout == "everything is up to date\n"

    git(repo, "checkout", "-q", "main")
    ok(run_mlv(repo, "checkout"))
    assert read_tree(repo / "data") == data_v2
    assert (repo / "model.pkl").read_bytes() == model_v2
    assert run_mlv(repo, "status").stdout == "everything is up to date\n"
    assert git(repo, "status", "--porcelain") == ""


def test_clone_and_checkout_with_a_shared_cache(mlv_repo: Path, tmp_path: Path) -> None:
    """A teammate's clone: the pointers come from git, the bytes from the shared cache."""
    shared = tmp_path / "shared"
    ok(run_mlv(mlv_repo, "config", "cache.dir", str(shared)))
    make_tree(mlv_repo, {"data": {"a": b"a" * 100}})
    ok(run_mlv(mlv_repo, "add", "data"))
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "data")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(clone))
    assert not (clone / "data").exists()
    ok(run_mlv(clone, "config", "--local", "cache.dir", str(shared)))  # each clone opts in
    st = run_mlv(clone, "status")
    assert st.stdout.startswith("data (data.mlv): deleted"), st.output
    ok(run_mlv(clone, "checkout"))
    assert read_tree(clone / "data") == {"a": b"a" * 100}


def test_pointer_format_on_disk(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"data": {"b": b"bb", "a": b"a"}})
    ok(run_mlv(mlv_repo, "add", "data"))
    text = (mlv_repo / "data.mlv").read_text()
    assert text.startswith("# ")
    out = yaml.safe_load(text)["outs"]
    assert len(out) == 1 and out[0]["path"] == "data" and out[0]["size"] == 3
    assert out[0]["nfiles"] == 2
    assert re.fullmatch(r"[0-9a-f]{32}\.dir", out[0]["xxh128"])


def test_a_bad_pointer_is_one_clear_error(mlv_repo: Path) -> None:
    (mlv_repo / "data.mlv").write_text("outs:\n- path: /etc/passwd\n  xxh128: x\n  size: 1\n")
    res = run_mlv(mlv_repo, "status")
    assert res.exit_code == 1
    assert res.stderr.startswith("error: data.mlv:")
    assert "Traceback" not in res.output
