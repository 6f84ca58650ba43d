"""A malformed or unsafe pointer is refused with one clear line, before anything changes.

Every case runs `mlv status`, `mlv checkout` (all pointers) and `mlv checkout` with
targets, next to a valid pointer whose data was deleted: a checkout that went ahead
would restore it, so "nothing changed on disk" also proves checkout refused first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import xxhash

from tests.conftest import git, make_tree, read_tree, run_mlv

HEADER = "# mlv pointer: `mlv checkout` restores this path from the cache\n"
CONTENT = b"alpha\n"
OID = xxhash.xxh3_128_hexdigest(CONTENT)  # stored in the cache by the fixture


def snapshot(*roots: Path) -> dict[str, object]:
    """Every file's bytes and mode, every folder and every symlink below `roots`.

    `.mlv/tmp` (lock file and stat cache: machine state that is safe to delete) is left out.
    """
    snap: dict[str, object] = {}
    for root in roots:
        for rel, data in read_tree(root).items():
            if not rel.startswith(".mlv/tmp/"):
                snap[f"{root}/{rel}"] = data
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                if os.path.relpath(path, root).startswith(os.path.join(".mlv", "tmp")):
                    continue
                st = os.lstat(path)
                link = os.readlink(path) if os.path.islink(path) else None
                snap[path + " (meta)"] = (st.st_mode, link)
    return snap


def assert_refused(res, needles: list[str], prefix: str | None = None) -> None:
    """Exit 1, exactly one `error:` line holding every needle, no traceback, no stdout."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.stdout == "", res.output
    lines = res.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), res.stderr
    if prefix is not None:
        assert errors[0].startswith(prefix), res.stderr
    for needle in needles:
        assert needle in errors[0], res.stderr


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module (there are many cases): a repo whose `data` is tracked."""
    with pytest.MonkeyPatch.context() as mp:  # the same isolation as conftest's `isolate`
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        for key in ("AUTHOR", "COMMITTER"):
            mp.setenv(f"GIT_{key}_NAME", "Test")
            mp.setenv(f"GIT_{key}_EMAIL", "test@example.com")
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        root = tmp_path_factory.mktemp("template") / "repo"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        assert run_mlv(root, "init").exit_code == 0
        make_tree(root, {"data": {"a.txt": CONTENT, "sub": {"b.bin": b"\0\1\2"}}})
        res = run_mlv(root, "add", "data")
        assert res.exit_code == 0, res.output
        git(root, "add", ".")
        git(root, "commit", "-qm", "data")
    return root


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template whose tracked `data` folder was then deleted."""
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    shutil.rmtree(root / "data")
    (root / ".mlv" / "tmp" / "state.db").unlink(missing_ok=True)  # inodes differ in a copy
    return root


def dir_oid(repo: Path) -> str:
    return (repo / "data.mlv").read_text().split("xxh128: ")[1].split()[0]


def check_all_commands_refuse(mlv, repo: Path, target: str, needles: list[str],
                              prefix: str | None, extra_roots: tuple[Path, ...] = ()) -> None:
    before = snapshot(repo, *extra_roots)
    for args in (["status"], ["checkout"], ["checkout", target], ["checkout", "data", target],
                 ["checkout", "--force"]):
        res = mlv(*args, cwd=repo)
        assert_refused(res, needles, prefix)
        assert snapshot(repo, *extra_roots) == before, f"`mlv {' '.join(args)}` changed the disk"
    assert not (repo / "data").exists()


def body(path: str = "bad", oid: str = OID, size: str = "6", extra: str = "") -> str:
    return f"{HEADER}outs:\n- path: {path}\n  xxh128: {oid}\n  size: {size}\n{extra}"


# (id, pointer text, line named in the message or None, needles in the error line)
CASES = [
    ("invalid-yaml", f"{HEADER}outs:\n- path: bad\n  xxh128: {OID}: x\n  size: 6\n", 4,
     ["invalid YAML"]),
    ("invalid-yaml-unclosed", f"{HEADER}outs:\n- path: [bad\n  xxh128: {OID}\n", None,
     ["invalid YAML"]),
    ("only-comment", HEADER, None, ["not an mlv pointer", "outs"]),
    ("top-level-list", f"{HEADER}- path: bad\n  xxh128: {OID}\n  size: 6\n", 2,
     ["not an mlv pointer", "outs"]),
    ("top-level-scalar", f"{HEADER}hello\n", 2, ["not an mlv pointer"]),
    ("missing-outs", f"{HEADER}path: bad\nxxh128: {OID}\nsize: 6\n", 2,
     ["not an mlv pointer", "outs"]),
    ("outs-not-a-list", f"{HEADER}outs: bad\n", 2, ["outs", "list"]),
    ("outs-empty", f"{HEADER}outs: []\n", 2, ["outs", "list"]),
    ("out-not-a-mapping", f"{HEADER}outs:\n- bad\n", 3, ["outs[0]", "mapping"]),
    ("missing-hash", f"{HEADER}outs:\n- path: bad\n  size: 6\n", 3, ["outs[0]", "xxh128"]),
    ("missing-size", f"{HEADER}outs:\n- path: bad\n  xxh128: {OID}\n", 3,
     ["outs[0]", "size"]),
    ("size-string", body(size="'6'"), 5, ["outs[0].size", "whole number"]),
    ("size-negative", body(size="-1"), 5, ["outs[0].size", "whole number"]),
    ("size-float", body(size="6.5"), 5, ["outs[0].size", "whole number"]),
    ("size-bool", body(size="true"), 5, ["outs[0].size", "whole number"]),
    ("nfiles-string", body(extra="  nfiles: many\n"), 6, ["outs[0].nfiles", "whole number"]),
    ("nfiles-negative", body(extra="  nfiles: -2\n"), 6, ["outs[0].nfiles", "whole number"]),
    ("exec-string", body(extra="  exec: 'yes'\n"), 6, ["outs[0].exec", "true or false"]),
    ("exec-number", body(extra="  exec: 1\n"), 6, ["outs[0].exec", "true or false"]),
    ("path-number", body(path="42"), 3, ["outs[0].path", "string"]),
    ("path-empty", body(path="''"), 3, ["outs[0].path", "string"]),
    ("unknown-out-field", body(extra="  colour: red\n"), 6, ["outs[0].colour", "unknown field"]),
    ("unknown-top-field", body() + "version: 2\n", 6, ["version", "unknown field"]),
    ("hash-31-hex", body(oid=OID[:31]), 4, ["outs[0].xxh128", "32 ", "hex digits", "31"]),
    ("hash-64-hex", body(oid=OID * 2), 4, ["outs[0].xxh128", "32 ", "hex digits", "64"]),
    ("hash-31-hex-dir", body(oid=OID[:31] + ".dir"), 4, ["outs[0].xxh128", "32 ", "hex digits"]),
    ("hash-not-hex", body(oid="g" * 32), 4, ["outs[0].xxh128", "32 ", "hex digits"]),
    ("hash-upper-case", body(oid=OID.upper()), 4, ["outs[0].xxh128", "32 ", "hex digits"]),
    ("hash-number", body(oid="12345"), 4, ["outs[0].xxh128", "32 ", "hex digits"]),
    # `$` in a regex also matches before a trailing newline: the hash must still be refused.
    ("hash-trailing-newline", body(oid=f'"{OID}\\n"'), 4, ["outs[0].xxh128", "hex digits"]),
    ("path-absolute", body(path="/etc"), 3, ["outs[0].path", "absolute", "/etc"]),
    ("path-absolute-nested", body(path="/tmp/x/y"), 3, ["outs[0].path", "absolute"]),
    ("path-dotdot", body(path="../outside"), 3, ["outs[0].path", "'..'"]),
    ("path-dotdot-inner", body(path="data/../../outside"), 3, ["outs[0].path", "'..'"]),
    ("path-dotdot-only", body(path=".."), 3, ["outs[0].path", "'..'"]),
    ("path-nul", body(path='"bad\\0"'), 3, ["outs[0].path", "NUL"]),
    # add refuses `.git` and `.mlv`; a pointer must not be able to write there either
    # (a checkout would install a git hook, or forge a cache object).
    ("path-into-git", body(path=".git/hooks/pre-commit", extra="  exec: true\n"), 3,
     ["outs[0].path", ".git"]),
    ("path-git-itself", body(path=".git", oid="{dir}"), 3, ["outs[0].path", ".git"]),
    ("path-mlv-itself", body(path=".mlv", oid="{dir}"), 3, ["outs[0].path", ".mlv"]),
    ("path-into-mlv", body(path=f".mlv/cache/xxh128/ff/{'f' * 30}"), 3,
     ["outs[0].path", ".mlv"]),
]


@pytest.mark.parametrize("text,line,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_pointer_is_refused_with_one_line(mlv, repo: Path, text: str,
                                                    line: int | None,
                                                    needles: list[str]) -> None:
    (repo / "bad.mlv").write_text(text.replace("{dir}", dir_oid(repo)), encoding="utf-8")
    prefix = f"error: bad.mlv:{line}: " if line else "error: bad.mlv"
    check_all_commands_refuse(mlv, repo, "bad.mlv", needles, prefix)
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_pointer_that_is_not_utf8_is_refused(mlv, repo: Path) -> None:
    (repo / "bad.mlv").write_bytes(b"outs:\n- path: \xff\xfe\n  size: 1\n")
    check_all_commands_refuse(mlv, repo, "bad", ["bad.mlv", "not a text file"], "error: bad.mlv")


def test_second_out_is_validated_too(mlv, repo: Path) -> None:
    good = f"- path: bad\n  xxh128: {OID}\n  size: 6\n"
    (repo / "bad.mlv").write_text(f"{HEADER}outs:\n{good}- path: /etc\n  xxh128: {OID}\n"
                                  "  size: 6\n")
    check_all_commands_refuse(mlv, repo, "bad", ["outs[1].path", "absolute"], "error: bad.mlv:6: ")
    assert not (repo / "bad").exists()


# ---- paths through symlinks -----------------------------------------------------------

@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the repository that no pointer may write into."""
    make_tree(tmp_path / "outside", {"keep.txt": "precious", "inner": {"x": "1"}})
    return tmp_path / "outside"


SYMLINK_CASES = {
    # the out itself is a symlink to a folder outside the repository
    "out-is-link": ({"link": "{outside}"}, "link.mlv", "link", "{dir}"),
    # the out is a dangling symlink to a path outside (checkout would create it there)
    "out-is-dangling-link": ({"link": "{outside}/new"}, "link.mlv", "link", "{dir}"),
    # a file out that is a symlink to a file outside
    "file-out-is-link": ({"link": "{outside}/keep.txt"}, "link.mlv", "link", "{file}"),
    # a symlinked parent folder: sub -> outside, out `sub/inner`
    "parent-is-link": ({"sub": "{outside}"}, "sub.mlv", "sub/inner", "{dir}"),
    # ... and a new path below it
    "parent-is-link-new-path": ({"sub": "{outside}"}, "sub.mlv", "sub/new", "{dir}"),
    # a pointer in a real folder whose out is a link out of the repository
    "nested-out-is-link": ({"d/x": "{outside}"}, "d/x.mlv", "x", "{dir}"),
    # a chain: two links, the second leaves the repository
    "link-chain": ({"hop": "{outside}", "link": "hop"}, "link.mlv", "link", "{dir}"),
}


@pytest.mark.parametrize("links,pointer_file,path,oid", SYMLINK_CASES.values(),
                         ids=SYMLINK_CASES.keys())
def test_pointer_path_through_symlink_to_outside_is_refused(
    mlv, repo: Path, outside: Path, links: dict[str, str], pointer_file: str, path: str,
    oid: str,
) -> None:
    for name, target in links.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target.format(outside=outside), repo / name)
    oid = oid.format(dir=dir_oid(repo), file=OID)
    (repo / pointer_file).write_text(body(path=path, oid=oid))
    check_all_commands_refuse(
        mlv, repo, pointer_file, ["outs[0].path", path, "symlink"],
        f"error: {pointer_file}:3: ", extra_roots=(outside,))
    assert not (outside / "new").exists()


def test_pointer_path_through_symlink_into_git_is_refused(mlv, repo: Path) -> None:
    os.symlink(".git/hooks", repo / "hooks")
    (repo / "hooks.mlv").write_text(body(path="hooks/pre-commit", extra="  exec: true\n"))
    check_all_commands_refuse(mlv, repo, "hooks.mlv", ["outs[0].path", "hooks/pre-commit"],
                              "error: hooks.mlv:3: ")
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_pointer_in_subfolder_may_not_track_its_own_folder(mlv, repo: Path) -> None:
    # `path: .` names the folder holding the pointer itself, which is not "beside" it:
    # a checkout would have to delete the pointer to make the folder match.
    make_tree(repo, {"d": {"keep.txt": "precious"}})
    (repo / "d" / "x.mlv").write_text(body(path=".", oid=dir_oid(repo)))
    check_all_commands_refuse(mlv, repo, "d/x.mlv", ["outs[0].path"], "error: d/x.mlv:3: ")


def test_symlinked_folder_inside_the_repository_is_refused_too(mlv, repo: Path) -> None:
    # One rule (mlv/paths.py): mlv never goes through a symlinked folder, wherever it
    # points, since a clone can bring one that points at .git or at /.
    (repo / "real").mkdir()
    os.symlink("real", repo / "alias")
    (repo / "alias.mlv").write_text(body(path="alias/data", oid=dir_oid(repo)))
    check_all_commands_refuse(mlv, repo, "alias.mlv",
                              ["outs[0].path", "goes through the symlink alias"],
                              "error: alias.mlv:3: ")
    assert not (repo / "real" / "data").exists()


# ---- directory manifests with unsafe entries -------------------------------------------

def store_manifest(repo: Path, entries: list[dict[str, object]]) -> str:
    data = json.dumps(entries, separators=(",", ":")).encode()
    oid = xxhash.xxh3_128_hexdigest(data)
    obj = repo / ".mlv" / "cache" / "xxh128" / oid[:2] / (oid[2:] + ".dir")
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    return oid + ".dir"


@pytest.mark.parametrize("entry", ["../evil", "sub/../../evil", "/tmp/evil-abs", "./evil",
                                   "a//evil", ""])
def test_manifest_entry_that_leaves_the_folder_is_refused(mlv, repo: Path,
                                                          entry: str) -> None:
    oid = store_manifest(repo, [{"path": "ok.txt", "xxh128": OID, "size": 6},
                                {"path": entry, "xxh128": OID, "size": 6}])
    (repo / "evil.mlv").write_text(body(path="evil", oid=oid))
    check_all_commands_refuse(mlv, repo, "evil.mlv", [oid, repr(entry)], None)
    assert not (repo / "evil").exists()
    assert not Path("/tmp/evil-abs").exists()
