"""Directory manifests and run-cache entries come from remotes: they are validated as
formats before anything is written (issue 8, defects 2 and 14)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import add_remote, git, run_mlv, xxh

FILE = b"hello\n"
FILE_OID = xxh(FILE)


def put_object(root: Path, oid: str, data: bytes) -> None:
    """Store `data` as object `oid` in an object store (a cache or a folder remote)."""
    path = root / "xxh128" / oid[:2] / oid[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def manifest_bytes(entries: list[object]) -> bytes:
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()


def pointer(path: str, oid: str, size: int, nfiles: int) -> str:
    return ("# mlv pointer: `mlv checkout` restores this path from the cache\n"
            f"outs:\n- path: {path}\n  xxh128: {oid}\n  size: {size}\n  nfiles: {nfiles}\n")


def assert_one_error(res, *needles: str) -> str:
    """Exit 1, one `error:` line holding every needle, no traceback; returns that line."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for needle in needles:
        assert needle in errors[0], res.stderr
    return errors[0]


# ---- defect 2: a manifest plants a nested .git whose config runs a command ----------------

@pytest.mark.parametrize("inside", ["", "sub/"])
def test_pull_refuses_a_manifest_that_plants_a_git_folder(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path, inside: str) -> None:
    marker = tmp_path / "pwned"
    config = (f'[core]\n\trepositoryformatversion = 0\n\tbare = false\n'
              f'\tfsmonitor = "touch {marker}"\n').encode()
    files = {f"{inside}.git/HEAD": b"ref: refs/heads/main\n", f"{inside}.git/config": config,
             f"{inside}.git/objects/info/keep": b"", f"{inside}.git/refs/heads/keep": b"",
             "ok.txt": FILE}
    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    entries = []
    for path, data in sorted(files.items()):
        put_object(url, xxh(data), data)
        entries.append({"path": path, "xxh128": xxh(data), "size": len(data)})
    listing = manifest_bytes(entries)
    oid = xxh(listing) + ".dir"
    put_object(url, oid, listing)
    (mlv_repo / "data.mlv").write_text(
        pointer("data", oid, sum(map(len, files.values())), len(files)))
    (mlv_repo / ".gitignore").write_text("/data\n")
    git(mlv_repo, "add", ".")
    git(mlv_repo, "commit", "-qm", "a folder with a surprise")

    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(victim))
    res = run_mlv(victim, "pull")
    assert_one_error(res, oid, ".git")
    data = victim / "data"
    if data.exists():
        assert not list(data.rglob(".git"))
    (data / inside).mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "status"], cwd=data / inside, capture_output=True, check=False)
    assert not marker.exists()
    assert_one_error(run_mlv(victim, "status"), oid)  # still refused, still one line


# ---- defect 14: every malformed manifest gets one line --------------------------------

GOOD = {"path": "a.txt", "xxh128": FILE_OID, "size": len(FILE)}
CASES: list[tuple[str, object, str]] = [
    ("not-a-list", GOOD, "not a JSON list"),
    ("entry-not-object", ["a.txt"], "not a JSON object"),
    ("entry-list", [[1, 2]], "not a JSON object"),
    ("unknown-key", [{**GOOD, "mode": 0o777}], "unknown key 'mode'"),
    ("missing-size", [{"path": "a.txt", "xxh128": FILE_OID}], "no 'size'"),
    ("missing-path", [{"xxh128": FILE_OID, "size": 6}], "no 'path'"),
    ("path-number", [{**GOOD, "path": 7}], "'path' is not a string"),
    ("path-null", [{**GOOD, "path": None}], "'path' is not a string"),
    ("hash-number", [{**GOOD, "xxh128": 5}], "'xxh128'"),
    ("hash-upper", [{**GOOD, "xxh128": FILE_OID.upper()}], "'xxh128'"),
    ("hash-short", [{**GOOD, "xxh128": FILE_OID[:31]}], "'xxh128'"),
    ("hash-dir", [{**GOOD, "xxh128": FILE_OID + ".dir"}], "'xxh128'"),
    ("hash-absolute", [{**GOOD, "xxh128": "//etc/passwd"}], "'xxh128'"),
    ("size-negative", [{**GOOD, "size": -1}], "'size'"),
    ("size-bool", [{**GOOD, "size": True}], "'size'"),
    ("size-float", [{**GOOD, "size": 6.0}], "'size'"),
    ("size-string", [{**GOOD, "size": "6"}], "'size'"),
    ("exec-string", [{**GOOD, "exec": "no"}], "'exec'"),
    ("exec-number", [{**GOOD, "exec": 1}], "'exec'"),
    ("exec-null", [{**GOOD, "exec": None}], "'exec'"),
    ("duplicate", [GOOD, GOOD], "listed twice"),
    ("file-and-folder", [GOOD, {**GOOD, "path": "a.txt/b"}], "both a file and a folder"),
    ("deep-file-and-folder", [{**GOOD, "path": "x/y"}, {**GOOD, "path": "x/y/z/w"}],
     "both a file and a folder"),
    ("git-config", [{**GOOD, "path": ".git/config"}], ".git/"),
    ("nested-git", [{**GOOD, "path": "sub/.git/HEAD"}], ".git/"),
    ("git-upper", [{**GOOD, "path": ".GIT/config"}], ".git/"),
    ("git-dot", [{**GOOD, "path": ".git./config"}], ".git/"),
    ("mlv-folder", [{**GOOD, "path": "s/.mlv/config"}], ".mlv/"),
    ("dotdot", [{**GOOD, "path": "../evil"}], "'..'"),
    ("absolute", [{**GOOD, "path": "/tmp/evil"}], "absolute"),
    ("newline", [{**GOOD, "path": "evil\nREADME.md"}], "control character"),
    ("empty-path", [{**GOOD, "path": ""}], "empty"),
    ("trailing-slash", [{**GOOD, "path": "a/"}], "not normalized"),
]


@pytest.fixture
def tracked(mlv, git_repo: Path) -> Path:
    """A repo whose cache holds FILE; the tests add a folder pointer by hand."""
    assert mlv("init", cwd=git_repo).exit_code == 0
    put_object(git_repo / ".mlv" / "cache", FILE_OID, FILE)
    return git_repo


def plant(repo: Path, listing: bytes) -> str:
    oid = xxh(listing) + ".dir"
    put_object(repo / ".mlv" / "cache", oid, listing)
    (repo / "data.mlv").write_text(pointer("data", oid, 6, 1))
    return oid


@pytest.mark.parametrize("doc,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_manifest_is_one_error_line(mlv, tracked: Path, doc: object,
                                              needle: str) -> None:
    oid = plant(tracked, manifest_bytes(doc))  # type: ignore[arg-type]
    for args in (["status"], ["checkout"], ["checkout", "--force"]):
        line = assert_one_error(mlv(*args, cwd=tracked), oid, needle)
        assert re.search(r"entry \d+|is damaged", line), line
    assert not (tracked / "data").exists()


@pytest.mark.parametrize("listing", [b"{not json", b"[" * 100_000, b"\xff\xfe", b""],
                         ids=["invalid", "deep", "not-utf8", "empty"])
def test_manifest_that_is_not_json_is_one_error_line(mlv, tracked: Path, listing: bytes
                                                     ) -> None:
    oid = plant(tracked, listing)
    assert_one_error(mlv("checkout", cwd=tracked), oid, "damaged")


def test_exec_false_and_true_are_accepted(mlv, tracked: Path) -> None:
    plant(tracked, manifest_bytes([{**GOOD, "exec": False},
                                         {**GOOD, "path": "run.sh", "exec": True}]))
    res = mlv("checkout", cwd=tracked)
    assert res.exit_code == 0, res.output
    assert (tracked / "data" / "a.txt").read_bytes() == FILE
    assert not os.stat(tracked / "data" / "a.txt").st_mode & stat.S_IXUSR
    assert os.stat(tracked / "data" / "run.sh").st_mode & stat.S_IXUSR


def test_long_entry_is_shortened_in_the_message(mlv, tracked: Path) -> None:
    oid = plant(tracked, manifest_bytes([{**GOOD, "path": "../" + "x" * 5000}]))
    line = assert_one_error(mlv("status", cwd=tracked), oid)
    assert len(line) < 400, line
