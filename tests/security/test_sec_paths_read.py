"""Every path read from a committed file is held to the one rule (mlv/paths.py) where it
is read: pointers, mlv.yaml (deps, outs, metrics, plots, wdir, params files), mlv.lock,
and the destinations of `mlv move` and `mlv add`.

The attacks are built from scratch and, where it applies, run as a victim would:
`git clone` the malicious repository, then `mlv pull` in a subprocess.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import add_remote, git, make_tree, read_tree, run_mlv, xxh
from tests.conftest import one_error as assert_one_error

HEADER = "# mlv pointer: `mlv checkout` restores this path from the cache\n"




def pointer_text(path: str, oid: str, size: str = "6", extra: str = "") -> str:
    return f"{HEADER}outs:\n- path: {path}\n  xxh128: {oid}\n  size: {size}\n{extra}"


def tree_of(*roots: Path) -> dict[str, bytes]:
    """Every file below `roots`, except mlv's machine state and its cache (`mlv pull`
    fetches what mlv.lock names, verified, before it reads mlv.yaml: harmless)."""
    return {f"{root}/{rel}": data for root in roots for rel, data in read_tree(root).items()
            if not rel.startswith((".mlv/tmp/", ".mlv/cache/"))}


# ---- pointers ---------------------------------------------------------------------------

OID = xxh(b"alpha\n")

POINTER_CASES = {
    # A mapping with keys of two types used to crash in `sorted(unknown)`.
    "mixed-top-keys": (f"{HEADER}1: x\nouts:\n- path: bad\n  xxh128: {OID}\n  size: 6\n",
                       ["bad.mlv:2: 1: unknown field"]),
    "mixed-out-keys": (pointer_text("bad", OID, extra="  7: x\n"),
                       ["bad.mlv:6: outs[0].7: unknown field"]),
    "negative-size": (pointer_text("bad", OID, size="-6"), ["outs[0].size", "whole number"]),
    "path-number": (pointer_text("12", OID), ["outs[0].path", "string"]),
    "path-list": (pointer_text("[a]", OID), ["outs[0].path", "string"]),
    "hash-number": (pointer_text("bad", "12"), ["outs[0].xxh128", "hex"]),
    "exec-no": (pointer_text("bad", OID, extra='  exec: "no"\n'), ["outs[0].exec", "true or"]),
    "duplicate": (pointer_text("bad", OID) + f"- path: bad\n  xxh128: {OID}\n  size: 6\n",
                  ["bad.mlv:6: outs[1].path", "twice"]),
    "overlap": (pointer_text("bad", OID) + f"- path: bad/x\n  xxh128: {OID}\n  size: 6\n",
                ["bad.mlv:6: outs[1].path", "overlap"]),
    "newline": (pointer_text('"evil\\nREADME.md"', OID), ["outs[0].path", "newline"]),
    "upper-git": (pointer_text(".GIT/hooks/x", OID), ["outs[0].path", ".git"]),
    "git-trailing-dot": (pointer_text(".git./hooks/x", OID), ["outs[0].path", ".git"]),
    "nested-git": (pointer_text("sub/.git/config", OID), ["outs[0].path", ".git"]),
    "short-name": (pointer_text("git~1/config", OID), ["outs[0].path", ".git"]),
    "drive": (pointer_text("C:/x", OID), ["outs[0].path", "absolute"]),
}


@pytest.mark.parametrize("text,needles", POINTER_CASES.values(), ids=POINTER_CASES.keys())
def test_malformed_pointer_gives_one_line(mlv, mlv_repo: Path, text: str,
                                          needles: list[str]) -> None:
    (mlv_repo / "bad.mlv").write_text(text, encoding="utf-8")
    before = tree_of(mlv_repo)
    for args in (["status"], ["checkout"], ["checkout", "--force"]):
        assert_one_error(mlv(*args, cwd=mlv_repo), *needles)
    assert tree_of(mlv_repo) == before
    assert not (mlv_repo / ".git" / "hooks" / "x").exists()


def test_pointer_in_a_folder_named_like_git_is_refused(mlv, mlv_repo: Path) -> None:
    # The pointer's own folder is part of the path: `.Git/x.mlv` would write into .Git/x.
    make_tree(mlv_repo, {".Git": {"x.mlv": pointer_text("x", OID)}})
    assert_one_error(mlv("checkout", ".Git/x.mlv", cwd=mlv_repo), "outs[0].path", ".git")


@pytest.mark.slow
def test_name_with_colon_is_added_pushed_and_pulled(mlv_repo: Path, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    # `a:b` was added, then refused as an absolute path by every later command.
    add_remote(mlv_repo, "local", request, tmp_path)
    make_tree(mlv_repo, {"a:b": "colon", "c:d": {"e.txt": "inside"}})
    for args in (("add", "a:b", "c:d"), ("status",), ("push",)):
        res = run_mlv(mlv_repo, *args)
        assert res.exit_code == 0, res.output
    git(mlv_repo, "add", ".")
    git(mlv_repo, "commit", "-qm", "colon names")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(clone))
    res = run_mlv(clone, "pull")
    assert res.exit_code == 0, res.output
    assert (clone / "a:b").read_text() == "colon"
    assert (clone / "c:d" / "e.txt").read_text() == "inside"
    res = run_mlv(clone, "status")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output


# ---- mlv.yaml: stage outputs through a committed symlink (defect 1) ----------------------

def put_on_remote(remote: str, data: bytes) -> str:
    """Store `data` on a local-folder remote by hand, as an attacker can."""
    oid = xxh(data)
    obj = Path(remote) / "xxh128" / oid[:2] / oid[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    return oid


def lock_text(stage: str, cmd: str, out: str, oid: str, size: int) -> str:
    return (f"schema: '1'\nstages:\n  {stage}:\n    cmd: {cmd}\n    outs:\n"
            f"    - path: {out}\n      xxh128: {oid}\n      size: {size}\n")


PAYLOAD = b"#!/bin/sh\necho pwned > /tmp/mlv-pwned\n"

# (symlinks committed in the attacker's repository, the stage's out, the file the attack
# would write in the victim's clone)
STAGE_ATTACKS = {
    "link-to-git": ({"link": ".git"}, "link/info/evil", ".git/info/evil"),
    "link-to-git-hook": ({"link": ".git"}, "link/hooks/post-checkout",
                         ".git/hooks/post-checkout"),
    "link-to-mlv": ({"link": ".mlv"}, "link/config.local", ".mlv/config.local"),
    "link-to-git-hooks-folder": ({"hooks": ".git/hooks"}, "hooks/post-checkout",
                                 ".git/hooks/post-checkout"),
    "upper-case-git": ({}, ".GIT/hooks/x", ".git/hooks/x"),
    "nested-git": ({}, "sub/.git/config", "sub/.git/config"),
}
# A path that breaks the rule by name is refused in whichever of mlv.yaml and mlv.lock
# the command reads first; one through a symlink, in mlv.yaml (the on-disk check).
WHERE = ("error: mlv.yaml:4: stages.build.outs.0: ", "error: mlv.lock: build.outs[0].path: ")


@pytest.mark.parametrize("links,out,victim", [
    pytest.param(*attack, id=name, marks=() if name == "link-to-git" else pytest.mark.slow)
    for name, attack in STAGE_ATTACKS.items()])
def test_clone_and_pull_never_write_a_stage_output_into_git(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        links: dict[str, str], out: str, victim: str) -> None:
    remote = add_remote(mlv_repo, "local", request, tmp_path)
    oid = put_on_remote(remote, PAYLOAD)
    for name, target in links.items():
        os.symlink(target, mlv_repo / name)
    (mlv_repo / "mlv.yaml").write_text(
        f"stages:\n  build:\n    cmd: echo hi\n    outs: [{out}]\n")
    (mlv_repo / "mlv.lock").write_text(lock_text("build", "echo hi", out, oid, len(PAYLOAD)))
    git(mlv_repo, "add", ".")
    git(mlv_repo, "commit", "-qm", "innocent pipeline")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(clone))
    before = tree_of(clone)
    for args in (("pull",), ("checkout",), ("status",)):
        res = run_mlv(clone, *args)
        assert assert_one_error(res, out).startswith(WHERE), res.stderr
    assert not (clone / victim).exists()
    assert not os.path.lexists(clone / ".git" / "info" / "evil")
    assert tree_of(clone) == before
    # and `git checkout` afterwards runs no planted hook
    git(clone, "checkout", "-q", "-b", "other")
    assert not Path("/tmp/mlv-pwned").exists()


# ---- mlv.yaml: every kind of path, one rule ------------------------------------------------

STAGE_CASES = {
    # id: (stage body lines, needles in the error line)
    "dep-through-link": ("deps: [outside/secret.txt]", ["deps.0", "symlink outside"]),
    "dep-link-to-outside": ("deps: [leak.txt]", ["deps.0", "outside the repository"]),
    "dep-upper-git": ("deps: [.Git/config]", ["deps.0", ".git"]),
    "metric-into-mlv": ("metrics: [.mlv/config.local]", ["metrics.0", ".mlv"]),
    "plot-through-link": ("plots: [outside/p.csv]", ["plots.0", "symlink"]),
    "out-trailing-dot": ("outs: [.git./x]", ["outs.0", ".git"]),
    "out-newline": ('outs: ["a\\nb"]', ["outs.0", "newline"]),
    "out-drive": ("outs: ['C:/x']", ["outs.0", "absolute"]),
    "out-dot": ("outs: [.]", ["outs.0", "whole repository"]),
    "wdir-through-link": ("wdir: outside\nouts: [x]", ["wdir", "symlink"]),
    "wdir-into-git": ("wdir: .git/hooks\nouts: [x]", ["wdir", ".git"]),
    "wdir-joined-into-git": ("wdir: sub\nouts: [../.git/x]", ["outs.0", ".git"]),
    "wdir-outside": ("wdir: ..\nouts: [x]", ["wdir", "outside"]),
}


@pytest.mark.parametrize("lines,needles", STAGE_CASES.values(), ids=STAGE_CASES.keys())
def test_every_stage_path_is_held_to_the_rule(mlv, mlv_repo: Path, tmp_path: Path,
                                              lines: str, needles: list[str]) -> None:
    make_tree(tmp_path / "outside", {"secret.txt": "token", "p.csv": "1"})
    os.symlink(tmp_path / "outside", mlv_repo / "outside")
    os.symlink(tmp_path / "outside" / "secret.txt", mlv_repo / "leak.txt")
    (mlv_repo / "sub").mkdir()
    body = "".join(f"    {line}\n" for line in lines.splitlines())
    (mlv_repo / "mlv.yaml").write_text(f"stages:\n  s:\n    cmd: echo hi\n{body}")
    for args in (("status",), ("repro",), ("dag",)):
        assert_one_error(mlv(*args, cwd=mlv_repo), "mlv.yaml:", "stages.s.", *needles)
    assert not (mlv_repo / "mlv.lock").exists()


def test_stage_paths_inside_the_repository_still_work(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"sub": {"in.txt": "x", "params.yaml": "lr: 1\n"},
                         "conf.json": '{"k": 2}', "a:b.txt": "colon"})
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  s:\n    wdir: sub\n    cmd: cat in.txt ../a:b.txt > out.txt\n"
        "    deps: [in.txt, ../a:b.txt]\n    params: [lr, ../conf.json:k]\n    outs: [out.txt]\n")
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert (mlv_repo / "sub" / "out.txt").read_text() == "xcolon"


# ---- params files outside the repository (defect 13) -------------------------------------

PARAMS_CASES = {
    "dotdot": "params: ['../outside.yaml:token']",
    "dotdot-mapping": "params:\n- ../outside.yaml: [token]",
    "absolute": "params: ['{outside}:token']",
    "wdir-dotdot": "wdir: sub\nparams: ['../../outside.yaml:token']",
    "through-link": "params: ['up/outside.yaml:token']",
    "file-is-link": "params: ['p.yaml:token']",
    "default-is-link": "wdir: linked\nparams: [token]",
}


@pytest.mark.parametrize("lines", PARAMS_CASES.values(), ids=PARAMS_CASES.keys())
def test_params_file_outside_the_repository_is_never_read(
        mlv, mlv_repo: Path, lines: str) -> None:
    outside = mlv_repo.parent / "outside.yaml"
    outside.write_text("token: SECRET-VALUE\n")
    (mlv_repo / "sub").mkdir()
    (mlv_repo / "linked").mkdir()
    os.symlink(mlv_repo.parent, mlv_repo / "up")
    os.symlink(outside, mlv_repo / "p.yaml")
    os.symlink(outside, mlv_repo / "linked" / "params.yaml")
    body = "".join(f"    {line}\n" for line in lines.format(outside=outside).splitlines())
    (mlv_repo / "mlv.yaml").write_text(f"stages:\n  s:\n    cmd: echo hi > o.txt\n{body}"
                                       "    outs: [o.txt]\n")
    for args in (("repro",), ("status",)):
        line = assert_one_error(mlv(*args, cwd=mlv_repo), "mlv.yaml:", "stages.s.params")
        assert "SECRET" not in line
    assert not (mlv_repo / "mlv.lock").exists()
    assert not (mlv_repo / "o.txt").exists()


@pytest.mark.parametrize("elsewhere", [False, True], ids=["default-cache", "cache-dir"])
def test_stage_output_linked_into_the_cache_is_allowed(mlv, mlv_repo: Path, tmp_path: Path,
                                                       elsewhere: bool) -> None:
    # The `symlink` cache type links outputs into the cache: that link is no escape.
    if elsewhere:
        assert mlv("config", "cache.dir", str(tmp_path / "cache"), cwd=mlv_repo).exit_code == 0
    assert mlv("config", "cache.type", "symlink", cwd=mlv_repo).exit_code == 0
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  s:\n    cmd: echo hi > o.txt\n    outs: [o.txt]\n")
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert (mlv_repo / "o.txt").is_symlink()
    for args in (("status",), ("repro",)):
        res = mlv(*args, cwd=mlv_repo)
        assert res.exit_code == 0, res.output


# ---- mlv.lock ------------------------------------------------------------------------------

def lock_entry(out: str = "  - path: o.txt\n    xxh128: {oid}\n    size: 3\n",
               extra: str = "") -> str:
    return (f"schema: '1'\nstages:\n s:\n  cmd: echo hi > o.txt\n  outs:\n{out}{extra}"
            .replace("{oid}", xxh(b"hi\n")))


LOCK_CASES = {
    "path-into-git": (lock_entry("  - path: .git/hooks/x\n    xxh128: {oid}\n    size: 3\n"),
                      ["s.outs[0].path", ".git"]),
    "path-dotdot": (lock_entry("  - path: ../x\n    xxh128: {oid}\n    size: 3\n"),
                    ["s.outs[0].path", "'..'"]),
    "path-absolute": (lock_entry("  - path: //srv/secret\n    xxh128: {oid}\n    size: 3\n"),
                      ["s.outs[0].path", "absolute"]),
    "path-number": (lock_entry("  - path: 12\n    xxh128: {oid}\n    size: 3\n"),
                    ["s.outs[0].path", "string"]),
    "size-negative": (lock_entry("  - path: o.txt\n    xxh128: {oid}\n    size: -3\n"),
                      ["s.outs[0].size", "whole number"]),
    "size-bool": (lock_entry("  - path: o.txt\n    xxh128: {oid}\n    size: true\n"),
                  ["s.outs[0].size", "whole number"]),
    "nfiles-string": (lock_entry("  - path: o.txt\n    xxh128: {oid}\n    size: 3\n"
                                 "    nfiles: many\n"), ["s.outs[0].nfiles", "whole number"]),
    "hash-number": (lock_entry("  - path: o.txt\n    xxh128: 12\n    size: 3\n"),
                    ["s.outs[0].xxh128", "hex"]),
    "duplicate": (lock_entry("  - path: o.txt\n    xxh128: {oid}\n    size: 3\n" * 2),
                  ["s.outs[1].path", "twice"]),
    "mixed-keys": (lock_entry("  - path: o.txt\n    xxh128: {oid}\n    size: 3\n    1: x\n"),
                   None),
    "params-mixed-keys": (lock_entry(extra="  params:\n   params.yaml:\n    lr: 1\n    2: x\n"),
                          ["s.params.params.yaml", "keys"]),
    "params-file-outside": (lock_entry(extra="  params:\n   ../p.yaml:\n    lr: 1\n"),
                            ["s.params", "'..'"]),
}


@pytest.mark.parametrize("text,needles", LOCK_CASES.values(), ids=LOCK_CASES.keys())
def test_malformed_lock_gives_one_line(mlv, mlv_repo: Path, text: str,
                                       needles: list[str] | None) -> None:
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  s:\n    cmd: echo hi > o.txt\n    params: [lr]\n    outs: [o.txt]\n")
    (mlv_repo / "params.yaml").write_text("lr: 1\n")
    (mlv_repo / "mlv.lock").write_text(text)
    if needles is None:  # extra keys are ignored (formats.md), whatever their type
        for args in (("status",), ("repro",)):
            res = mlv(*args, cwd=mlv_repo)
            assert res.exit_code == 0 and "Traceback" not in res.output, res.output
        return
    for args in (("status",), ("repro",), ("checkout",)):
        assert_one_error(mlv(*args, cwd=mlv_repo), "mlv.lock: ", *needles)
    assert not (mlv_repo / "o.txt").exists()


# ---- mlv add, mlv move, mlv remove (defects 12, 15) ---------------------------------------

def test_add_of_a_name_with_a_newline_writes_nothing(mlv, mlv_repo: Path) -> None:
    # `mlv add $'evil\nREADME.md'` appended a line that ignored every README.md.
    make_tree(mlv_repo, {"evil\nREADME.md": "x", "README.md": "read me",
                         "tab\tname": "x", "esc\x1bname": "x"})
    before = tree_of(mlv_repo)
    for name, needle in (("evil\nREADME.md", "a newline"), ("tab\tname", "a tab"),
                         ("esc\x1bname", "U+001B")):
        line = assert_one_error(mlv("add", name, cwd=mlv_repo), repr(name), needle)
        assert "\n" not in line
        assert_one_error(mlv("add", "README.md", name, cwd=mlv_repo), repr(name))
    assert tree_of(mlv_repo) == before
    assert not (mlv_repo / ".gitignore").exists()


def test_ignore_entry_refuses_control_characters() -> None:
    from mlv import scm
    from mlv.errors import PathError

    with pytest.raises(PathError, match="control character"):
        scm.ignore_entry("evil\nREADME.md")
    assert scm.ignore_entry("a:b") == "/a:b"


@pytest.mark.parametrize("target", [".GIT/config", ".git./config", ".Mlv/config",
                                    "sub/.git/config", "git~1/config"])
def test_add_inside_git_or_mlv_in_any_spelling_is_refused(mlv, mlv_repo: Path,
                                                          target: str) -> None:
    *folders, name = target.split("/")
    spec: dict[str, bytes | str | dict] = {name: "x"}
    for folder in reversed(folders):
        spec = {folder: spec}
    make_tree(mlv_repo, spec)
    before = tree_of(mlv_repo)
    assert_one_error(mlv("add", target, cwd=mlv_repo), target, "cannot be tracked")
    assert tree_of(mlv_repo) == before


@pytest.fixture
def tracked(mlv, mlv_repo: Path) -> Path:
    make_tree(mlv_repo, {"data": {"a.txt": "alpha"}, "sub": {}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    git(mlv_repo, "add", ".")
    git(mlv_repo, "commit", "-qm", "data")
    return mlv_repo


@pytest.mark.parametrize("dst,needle", [
    (".git/stolen", ".git"), (".GIT/stolen", ".git"), (".git./stolen", ".git"),
    (".mlv/stolen", ".mlv"), ("sub/.git", ".git"), ("gitlink/stolen", ".git"),
    ("gitlink/", "symlink"), ("outlink/", "symlink"), ("../stolen", "outside"),
    ("new\nname", "control character"),
])
def test_move_into_git_mlv_or_outside_is_refused(mlv, tracked: Path, dst: str,
                                                 needle: str) -> None:
    os.symlink(".git", tracked / "gitlink")
    os.symlink(tracked.parent, tracked / "outlink")
    before = tree_of(tracked)
    assert_one_error(mlv("move", "data", dst, cwd=tracked), needle)
    assert tree_of(tracked) == before
    assert (tracked / "data" / "a.txt").read_text() == "alpha"
    assert not (tracked / ".git" / "stolen").exists()
    assert not (tracked / ".git" / "data").exists()
    assert not (tracked.parent / "data").exists() and not (tracked.parent / "stolen").exists()
    res = mlv("status", cwd=tracked)
    assert res.exit_code == 0, res.output


def test_remove_outs_never_deletes_through_a_committed_symlink(mlv, mlv_repo: Path,
                                                               tmp_path: Path) -> None:
    make_tree(tmp_path / "outside", {"victim": {"keep.txt": "precious"}})
    os.symlink(tmp_path / "outside", mlv_repo / "link")
    (mlv_repo / "x.mlv").write_text(pointer_text("link/victim", xxh(b"precious"), size="8"))
    for args in (("remove", "--outs", "x.mlv"), ("remove", "x.mlv")):
        assert_one_error(mlv(*args, cwd=mlv_repo), "x.mlv:3", "symlink")
    assert (tmp_path / "outside" / "victim" / "keep.txt").read_text() == "precious"
    assert (mlv_repo / "x.mlv").exists()


def test_mlv_yaml_with_mixed_key_types_gives_one_line(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text("stages: {}\n1: x\na: y\n")
    assert_one_error(mlv("status", cwd=mlv_repo), "mlv.yaml:2: 1: unknown top-level key")
