"""Directory manifests and run-cache entries come from remotes: they are validated as
formats before anything is written (issue 8, defects 2, 5 and 14)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import add_remote, git, make_tree, run_mlv, xxh
from tests.conftest import one_error as assert_one_error

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


# ---- defect 5: a run-cache entry from a remote names a local file as its output ---------

def stage_repo(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"in.txt": "input\n"})
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  gen:\n    cmd: cat in.txt > out.txt\n    deps: [in.txt]\n"
        "    outs: [out.txt]\n")


def run_entry(root: Path) -> Path:
    """The one run-cache entry below `root` (a cache's or a remote's runs/ folder)."""
    found = [p for p in (root / "runs").glob("*/*") if p.is_file()]
    assert len(found) == 1, found
    return found[0]


def lock_outs(repo: Path) -> list[dict[str, object]]:
    import yaml

    lock = yaml.safe_load((repo / "mlv.lock").read_text())
    return list(lock["stages"]["gen"]["outs"])


def test_pulled_run_cache_entry_naming_a_local_file_is_refused(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP SECRET\n")
    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    stage_repo(mlv_repo)
    assert run_mlv(mlv_repo, "repro").exit_code == 0
    res = run_mlv(mlv_repo, "push", "--run-cache")
    assert res.exit_code == 0, res.output
    entry = run_entry(url)
    doc = json.loads(entry.read_text())
    doc["outs"][0]["xxh128"] = "/" + str(secret)  # "//tmp/…/secret.txt"
    entry.write_text(json.dumps(doc))
    (mlv_repo / ".gitignore").write_text("/out.txt\n")
    git(mlv_repo, "add", "mlv.yaml", "in.txt", ".gitignore", ".mlv")
    git(mlv_repo, "commit", "-qm", "a pipeline (no lock: the victim runs it)")

    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(victim))
    res = run_mlv(victim, "pull", "--run-cache")
    assert "Traceback" not in res.output, res.output
    assert not list((victim / ".mlv" / "cache" / "runs").glob("*/*"))  # not kept
    res = run_mlv(victim, "repro")
    assert res.exit_code == 0, res.output
    assert "restored" not in res.output
    assert (victim / "out.txt").read_bytes() == b"input\n"
    [out] = lock_outs(victim)
    assert out["xxh128"] == xxh(b"input\n")
    res = run_mlv(victim, "status")
    assert res.exit_code == 0, res.output


def _mutate(doc: dict, how: str) -> object:
    out = doc["outs"][0]
    changes: dict[str, object] = {
        "hash-absolute": {**out, "xxh128": "//etc/passwd"},
        "hash-dotdot": {**out, "xxh128": "../../../etc/passwd"},
        "hash-upper": {**out, "xxh128": str(out["xxh128"]).upper()},
        "hash-number": {**out, "xxh128": 12},
        "path-git": {**out, "path": ".git/hooks/post-checkout"},
        "path-absolute": {**out, "path": "/tmp/out.txt"},
        "path-number": {**out, "path": 3},
        "size-negative": {**out, "size": -5},
        "size-bool": {**out, "size": True},
        "size-string": {**out, "size": "6"},
        "nfiles-string": {**out, "nfiles": "many"},
        "unknown-key": {**out, "mode": 511},
        "missing-size": {k: v for k, v in out.items() if k != "size"},
    }
    if how in changes:
        return {"outs": [changes[how]]}
    return {
        "duplicate": {"outs": [out, out]},
        "extra-out": {"outs": [out, {**out, "path": "other.txt"}]},
        "no-outs": {"outs": []},
        "outs-not-list": {"outs": out},
        "top-list": [out],
        "extra-top-key": {**doc, "cmd": "rm -rf /"},
    }[how]


RUN_CASES = ["hash-absolute", "hash-dotdot", "hash-upper", "hash-number", "path-git",
             "path-absolute", "path-number", "size-negative", "size-bool", "size-string",
             "nfiles-string", "unknown-key", "missing-size", "duplicate", "extra-out",
             "no-outs", "outs-not-list", "top-list", "extra-top-key", "invalid-json"]


@pytest.fixture
def ran(mlv, mlv_repo: Path) -> Path:
    """`gen` ran once (its run-cache entry is stored); then its output was deleted."""
    stage_repo(mlv_repo)
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    (mlv_repo / "out.txt").unlink()
    return mlv_repo


def test_a_valid_run_cache_entry_is_restored(mlv, ran: Path) -> None:
    res = mlv("repro", cwd=ran)
    assert res.exit_code == 0, res.output
    assert "restored outputs from the run-cache" in res.output


@pytest.mark.parametrize("how", RUN_CASES)
def test_a_bad_run_cache_entry_is_a_miss(mlv, ran: Path, how: str) -> None:
    entry = run_entry(ran / ".mlv" / "cache")
    doc = json.loads(entry.read_text())
    os.chmod(entry, 0o644)
    entry.write_text("{oops" if how == "invalid-json" else json.dumps(_mutate(doc, how)))
    res = mlv("repro", cwd=ran)
    assert res.exit_code == 0, res.output
    assert "restored" not in res.output
    assert "running stage gen" in res.output
    assert (ran / "out.txt").read_bytes() == b"input\n"
    [out] = lock_outs(ran)
    assert out["xxh128"] == xxh(b"input\n")
    assert mlv("status", cwd=ran).exit_code == 0


# ---- the fast path of mlv.paths that manifests use agrees with the full rule -------------

def test_the_fast_path_never_passes_what_the_rule_refuses(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import random

    from mlv import paths

    pieces = ["a", "B", "0", ".", "..", "/", "\\", "~", "git", ".git", ".GIT. ", ":", "C:",
              " ", "\n", "\x7f", "-", "mlv", "git~1", "é", "ſ", "Ｇ", "\ud800", " .git"]
    rng = random.Random(8)
    cases = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
             for _ in range(20_000)]
    fast = [paths.problem(c) for c in cases]
    lists = [cases[i:i + rng.randint(0, 3)] for i in range(0, 3000, 3)]
    fast_lists = [paths.first_problem(rels) for rels in lists]
    monkeypatch.setattr(paths, "_plain", lambda rel, longest=None: False)
    assert [p is None for p in fast] == [paths.problem(c) is None for c in cases]
    assert fast_lists == [paths.first_problem(rels) for rels in lists]
