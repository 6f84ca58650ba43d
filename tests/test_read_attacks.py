"""An attacker's tests of reading another repository (`mlv ls`, `mlv get`, `mlv.api`):
each builds the hostile input for real (a git repository, a bare origin in tmp_path,
a file:// URL) and checks that mlv refuses it with one line, or does no harm."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, commit_all, git, make_tree, one_error

from mlv.api.source import clone_folder

Mlv = Callable[..., Result]


def plain_repo(tmp_path: Path, name: str = "src") -> Path:
    repo = tmp_path / name
    repo.mkdir()
    git(repo, "init", "-q")
    make_tree(repo, {"README": "hello\n"})
    commit_all(repo, "one")
    return repo


def bare_origin(repo: Path, tmp_path: Path, name: str = "origin.git") -> str:
    origin = tmp_path / name
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    return f"file://{origin}"


# ---- the destination of `mlv get` --------------------------------------------------------

@pytest.mark.parametrize("given", ["..", "../", "./.."])
def test_get_force_of_the_parent_repository_never_removes_it(
        tmp_path: Path, mlv: Mlv, cache_home: Path, given: str) -> None:
    """`mlv get .. . --force` from a folder inside a repository named the result `..`,
    so --force removed the repository itself (and the current folder with it)."""
    repo = plain_repo(tmp_path)
    inner = repo / "sub"
    inner.mkdir()
    res = mlv("get", given, ".", "--force", cwd=inner)
    assert (repo / ".git").is_dir()
    assert (repo / "README").read_text() == "hello\n"
    if res.exit_code == 0:  # it went to a folder of its own, inside the current one
        assert (inner / "src" / "README").read_text() == "hello\n"
    else:
        one_error(res)


# ---- git transports ----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["fd::7", "ext::sh -c touch% pwned"])
def test_fd_and_ext_transports_are_refused(tmp_path: Path, mlv: Mlv, cache_home: Path,
                                           monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """`fd::` made git wait forever on a file descriptor (holding the clone lock); `ext::`
    runs a command, and a user's git config may allow it (protocol.allow=always)."""
    home = tmp_path / "gitcfg"
    home.write_text("[protocol]\n\tallow = always\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home))
    here = tmp_path / "here"
    here.mkdir()
    res = run_timeout(here, "get", url, "README")
    one_error(res, "cannot clone")
    assert not (here / "pwned").exists()
    assert not list((cache_home / "mlv" / "repos").glob("*/git"))


def run_timeout(cwd: Path, *args: str) -> Result:
    from conftest import run_mlv

    return run_mlv(cwd, *args, timeout=30)


# ---- the clone cache -----------------------------------------------------------------------

def test_a_symlinked_clone_folder_is_not_followed(tmp_path: Path, mlv: Mlv,
                                                  cache_home: Path) -> None:
    """Another local user (or a hostile script) plants ~/.cache/mlv/repos/<id> as a link
    to a mirror it controls: mlv would read that repository, and run `git fetch` with its
    config, for the user's URL."""
    url = bare_origin(plain_repo(tmp_path), tmp_path)
    evil = plain_repo(tmp_path, "evil")
    make_tree(evil, {"README": "evil\n"})
    commit_all(evil, "two")
    planted = tmp_path / "planted"
    planted.mkdir()
    git(tmp_path, "clone", "-q", "--mirror", str(evil), str(planted / "git"))
    folder = Path(clone_folder(url))
    folder.parent.mkdir(parents=True)
    folder.symlink_to(planted)
    here = tmp_path / "here"
    here.mkdir()
    res = mlv("get", url, "README", cwd=here)
    assert not (here / "README").exists() or (here / "README").read_text() == "hello\n"
    if res.exit_code != 0:
        one_error(res, "symlink")
    assert os.path.islink(folder) or not os.path.lexists(folder)


# ---- resource exhaustion -----------------------------------------------------------------

BIG = 300 << 20


@pytest.fixture
def zero_blob_url(tmp_path: Path, cache_home: Path) -> str:
    """A repository whose git tracks a 300 MiB file of zeros: its pack is a few MB."""
    repo = plain_repo(tmp_path, "zeros")
    with open(repo / "zero.bin", "wb") as f:
        f.truncate(BIG)  # sparse: quick to make
    git(repo, "-c", "core.bigFileThreshold=1m", "add", "zero.bin")
    git(repo, "commit", "-q", "-m", "zeros")
    (repo / "zero.bin").unlink()
    url = bare_origin(repo, tmp_path, "zeros.git")
    assert run_timeout(tmp_path, "ls", url, "").exit_code == 0  # clone it: git's memory
    return url


def peak_rss_mib(cwd: Path, *args: str) -> float:
    """Run `python *args` in a subprocess; its peak resident memory (with git's, which it
    waits for), in MiB. A small launcher starts it: a process keeps the peak of the one
    it was forked from across exec, and a pytest worker may already hold hundreds of MiB."""
    import subprocess
    import sys

    launcher = ("import os, subprocess, sys\n"
                "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, "
                "stderr=subprocess.DEVNULL)\n"
                "_, status, usage = os.wait4(p.pid, 0)\n"
                "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", launcher, sys.executable, *args], cwd=cwd,
                         capture_output=True, text=True, check=True)
    code, kib = out.stdout.split()
    assert code == "0", out.stderr
    return int(kib) / 1024


@pytest.mark.slow
def test_get_of_a_huge_git_blob_is_streamed(tmp_path: Path, zero_blob_url: str) -> None:
    """The blob was read whole into memory, twice over: 3 GB of memory for a 1.5 GB file
    that a 2 MB clone brings (and a 10 GB one ends the process)."""
    here = tmp_path / "here"
    here.mkdir()
    peak = peak_rss_mib(here, "-m", "mlv", "get", zero_blob_url, "zero.bin")
    assert (here / "zero.bin").stat().st_size == BIG
    assert peak < 200, f"{peak:.0f} MiB"


@pytest.mark.slow
def test_api_open_of_a_huge_git_blob_is_streamed(tmp_path: Path, zero_blob_url: str) -> None:
    script = ("import mlv.api\n"
              f"with mlv.api.open('zero.bin', repo={zero_blob_url!r}, mode='rb') as f:\n"
              "    n = 0\n"
              "    while (b := f.read(1 << 20)):\n"
              "        n += len(b)\n"
              f"assert n == {BIG}, n\n")
    peak = peak_rss_mib(tmp_path, "-c", script)
    assert peak < 200, f"{peak:.0f} MiB"


# ---- names from a git tree -----------------------------------------------------------------

def crafted_tree_url(tmp_path: Path, names: list[str]) -> str:
    """A repository whose one commit holds a file under each of `names` (a tree made by
    `git mktree`, which takes names a work tree cannot hold: `.git`, `..`, a newline)."""
    repo = tmp_path / "crafted"
    repo.mkdir()
    git(repo, "init", "-q")
    import subprocess

    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"evil\n",
                          capture_output=True, check=True).stdout.decode().strip()
    listing = b"".join(f"100644 blob {blob}\t{n}".encode() + b"\0" for n in sorted(names))
    tree = subprocess.run(["git", "mktree", "-z"], cwd=repo, input=listing,
                          capture_output=True, check=True).stdout.decode().strip()
    commit = git(repo, "commit-tree", tree, "-m", "crafted").strip()
    git(repo, "update-ref", "HEAD", commit)
    return bare_origin(repo, tmp_path, "crafted.git")


@pytest.mark.parametrize("name", [".git", ".GIT", ".mlv", "git~1"])
def test_get_never_writes_a_reserved_name(tmp_path: Path, mlv: Mlv, cache_home: Path,
                                          name: str) -> None:
    """A crafted tree holds a file named `.git`: `mlv get URL .git --force` in a work tree
    replaced the user's own .git with it."""
    url = crafted_tree_url(tmp_path, [name])
    here = tmp_path / "here"
    here.mkdir()
    git(here, "init", "-q")
    res = mlv("get", url, name, "--force", cwd=here)
    one_error(res, name)
    assert (here / ".git" / "HEAD").is_file()
    assert sorted(os.listdir(here)) == [".git"]


def test_ls_shows_a_newline_in_a_name_escaped(tmp_path: Path, mlv: Mlv,
                                              cache_home: Path) -> None:
    """A name holding a newline printed as two lines: a fake entry in the listing."""
    url = crafted_tree_url(tmp_path, ["a\n    mlv       1 GB  model.pt", "b"])
    res = mlv("ls", url, "", cwd=tmp_path)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 2, lines
    assert "a\\u000a" in lines[0]


# ---- the committed config's remote ---------------------------------------------------------

def test_a_relative_local_url_of_a_clone_is_refused(tmp_path: Path, mlv: Mlv,
                                                    cache_home: Path) -> None:
    """`url: local://rel` (mlv's other spelling of a folder) was read relative to the
    user's current folder: file:// and plain relative URLs were refused, not this one."""
    repo = plain_repo(tmp_path)
    assert mlv("init", "-q", cwd=repo).exit_code == 0
    (repo / "rel").mkdir()
    assert mlv("remote", "add", "-d", "r", "local://rel", cwd=repo).exit_code == 0
    make_tree(repo, {"d": {"x": "x\n"}})
    assert mlv("add", "d", cwd=repo).exit_code == 0
    commit_all(repo, "rel")
    url = bare_origin(repo, tmp_path)
    here = tmp_path / "here"
    (here / "rel").mkdir(parents=True)
    res = mlv("get", url, "d", cwd=here)
    one_error(res, "relative url")


# ---- errors: one line ----------------------------------------------------------------------

def test_get_into_a_path_below_a_file_is_one_error(tmp_path: Path, mlv: Mlv,
                                                   cache_home: Path) -> None:
    """`-o file/x` where `file` is a file crashed (exit 3): cleaning up the temp file
    that could not be made raised NotADirectoryError over the real error."""
    url = bare_origin(plain_repo(tmp_path), tmp_path)
    here = tmp_path / "here"
    here.mkdir()
    (here / "file").write_text("mine\n")
    res = mlv("get", url, "README", "-o", "file/x", cwd=here)
    one_error(res)
    assert (here / "file").read_text() == "mine\n"


def test_get_force_never_replaces_a_fifo(tmp_path: Path, mlv: Mlv, cache_home: Path) -> None:
    """`-o /dev/null --force` (as root) replaced the device with a regular file; a FIFO
    stands in for it here."""
    url = bare_origin(plain_repo(tmp_path), tmp_path)
    here = tmp_path / "here"
    here.mkdir()
    os.mkfifo(here / "pipe")
    res = mlv("get", url, "README", "-o", "pipe", "--force", cwd=here)
    one_error(res, "pipe", "FIFO")
    assert (here / "pipe").is_fifo()
