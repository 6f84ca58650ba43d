"""Loose ends of issue 8: an add that is refused changes nothing; refused run-cache
entries are reported, and an unusable run-cache hit is a miss; remote URLs never show
their secrets; remote manifests are read with a size limit; deeply nested JSON params
and metrics are one error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import add_remote, git, make_tree, run_mlv
from tests.conftest import one_error as assert_one_error


def victim(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlv", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)




def snapshot_files(root: Path) -> dict[str, bytes | str]:
    """Every path below root except .git/ and the cache: file bytes or the link target."""
    seen: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".git/", ".mlv/cache", ".mlv/tmp")) or rel == ".git":
            continue
        if path.is_symlink():
            seen[rel] = "-> " + os.readlink(path)
        elif path.is_fifo():
            seen[rel] = "fifo"
        elif path.is_file():
            seen[rel] = path.read_bytes()
        else:
            seen[rel] = "dir"
    return seen


# ---- 1. `mlv add` is all or nothing ---------------------------------------------------

def _bad_gitignore(path: Path, kind: str, tmp_path: Path) -> None:
    if kind == "symlink":
        secret = tmp_path / "secret"
        secret.write_text("SECRET\n")
        os.symlink(secret, path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:  # larger than git itself reads (sparse: takes no disk)
        with open(path, "wb") as f:
            f.truncate(101 << 20)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "oversized"])
def test_a_refused_gitignore_leaves_no_pointer(mlv_repo: Path, tmp_path: Path,
                                               kind: str) -> None:
    """The first target is fine, the second's folder has a bad .gitignore: neither gets a
    pointer and no .gitignore changes."""
    make_tree(mlv_repo, {"first": "one\n", "sub": {"second": "two\n"}})
    _bad_gitignore(mlv_repo / "sub" / ".gitignore", kind, tmp_path)
    before = snapshot_files(mlv_repo)
    assert_one_error(victim(mlv_repo, "add", "first", "sub/second"), ".gitignore")
    assert snapshot_files(mlv_repo) == before
    assert not (mlv_repo / "first.mlv").exists()
    assert not (mlv_repo / "sub" / "second.mlv").exists()


def test_a_target_refused_while_reading_leaves_no_pointer(mlv_repo: Path) -> None:
    """A broken link inside the second folder is found while hashing: the first target,
    already hashed, gets no pointer either."""
    make_tree(mlv_repo, {"first": "one\n", "second": {"ok": "x"}})
    os.symlink("nowhere", mlv_repo / "second" / "broken")
    before = snapshot_files(mlv_repo)
    assert_one_error(victim(mlv_repo, "add", "first", "second"), "broken symlink")
    assert snapshot_files(mlv_repo) == before


def test_a_read_only_folder_is_refused_before_any_pointer(mlv_repo: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    make_tree(mlv_repo, {"first": "one\n", "sub": {"second": "two\n"}})
    os.chmod(mlv_repo / "sub", 0o555)
    try:
        before = snapshot_files(mlv_repo)
        assert_one_error(victim(mlv_repo, "add", "first", "sub/second"), "sub")
        assert snapshot_files(mlv_repo) == before
    finally:
        os.chmod(mlv_repo / "sub", 0o755)


def test_a_good_add_still_writes_pointers_and_ignores(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"first": "one\n", "sub": {"second": "two\n"}})
    res = run_mlv(mlv_repo, "add", "first", "sub/second")
    assert res.exit_code == 0, res.output
    assert (mlv_repo / "first.mlv").is_file()
    assert (mlv_repo / "sub" / "second.mlv").is_file()
    assert "/second" in (mlv_repo / "sub" / ".gitignore").read_text()
    git(mlv_repo, "add", "-A")


# ---- 2. run-cache entries refused on pull are reported ----------------------------------

PIPE = ("stages:\n  gen:\n    cmd: cat in.txt > out.txt\n    deps: [in.txt]\n"
        "    outs: [out.txt]\n")


@pytest.fixture
def shared(mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A pipeline run once and pushed with its run-cache to a folder remote; returns
    the remote's folder. The repository is committed without mlv.lock."""
    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    make_tree(mlv_repo, {"in.txt": "input\n", "mlv.yaml": PIPE, ".gitignore": "/out.txt\n"})
    assert run_mlv(mlv_repo, "repro").exit_code == 0
    res = run_mlv(mlv_repo, "push", "--run-cache")
    assert res.exit_code == 0, res.output
    git(mlv_repo, "add", "mlv.yaml", "in.txt", ".gitignore", ".mlv")
    git(mlv_repo, "commit", "-qm", "a pipeline (no lock: the victim runs it)")
    return url


def run_entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").glob("*/*") if p.is_file())


def clone(repo: Path, tmp_path: Path) -> Path:
    target = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(repo), str(target))
    return target


def warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("warning:")]


def test_a_refused_run_cache_entry_is_reported(mlv_repo: Path, shared: Path,
                                               tmp_path: Path) -> None:
    [entry] = run_entries(shared)
    doc = json.loads(entry.read_text())
    doc["outs"][0]["xxh128"] = "//srv/secret.txt"
    entry.write_text(json.dumps(doc))
    key = entry.parent.name + entry.name
    victim_repo = clone(mlv_repo, tmp_path)
    proc = victim(victim_repo, "pull", "--run-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert warnings(proc.stderr) == [
        f"warning: run-cache entry {key} from 'store' ignored: out 1: xxh128 of 'out.txt' "
        "is not an object id"], proc.stderr
    assert not run_entries(victim_repo / ".mlv" / "cache")


def test_many_refused_entries_are_capped(mlv_repo: Path, shared: Path, tmp_path: Path) -> None:
    for n in range(8):
        key = f"{n:02x}" + "ab" * 15
        (shared / "runs" / key[:2]).mkdir(parents=True, exist_ok=True)
        (shared / "runs" / key[:2] / key[2:]).write_text("{oops" if n % 2 else "[]")
    victim_repo = clone(mlv_repo, tmp_path)
    proc = victim(victim_repo, "pull", "--run-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = warnings(proc.stderr)
    assert len(shown) == 6, proc.stderr
    assert "ignored: not valid JSON" in shown[1]
    assert 'ignored: not an object holding one "outs" list' in shown[0]
    assert shown[-1] == "warning: and 3 more run-cache entries from 'store' ignored"
    assert "Traceback" not in proc.stderr
    assert len(run_entries(victim_repo / ".mlv" / "cache")) == 1  # the good one is kept


# ---- 3. a run-cache hit that cannot be used is a miss -----------------------------------

DIR_PIPE = ("stages:\n  gen:\n    cmd: mkdir -p out && cat in.txt > out/a.txt\n"
            "    deps: [in.txt]\n    outs: [out]\n")


def _plant_object(repo: Path, oid: str, data: bytes) -> None:
    path = repo / ".mlv" / "cache" / "xxh128" / oid[:2] / oid[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("manifest", [
    b'[{"path": ".git/config", "xxh128": "' + b"0" * 32 + b'", "size": 1}]',
    b"{oops",
    b"[" * 5000 + b"]" * 5000,
])
def test_a_run_cache_hit_naming_a_bad_manifest_is_a_miss(mlv_repo: Path, manifest: bytes
                                                         ) -> None:
    make_tree(mlv_repo, {"in.txt": "input\n", "mlv.yaml": DIR_PIPE})
    assert run_mlv(mlv_repo, "repro").exit_code == 0
    [entry] = run_entries(mlv_repo / ".mlv" / "cache")
    doc = json.loads(entry.read_text())
    bad = "ab" * 16 + ".dir"
    doc["outs"][0]["xxh128"] = bad
    os.chmod(entry, 0o644)
    entry.write_text(json.dumps(doc))
    _plant_object(mlv_repo, bad, manifest)
    import shutil

    shutil.rmtree(mlv_repo / "out")
    proc = victim(mlv_repo, "repro")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running stage gen" in proc.stdout
    assert "restored" not in proc.stdout
    assert (mlv_repo / "out" / "a.txt").read_text() == "input\n"
    assert len(warnings(proc.stdout + proc.stderr)) <= 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (mlv_repo / ".git" / "config").read_text().count("0" * 32)


# ---- 4. remote URLs never show their secrets ----------------------------------------------

def _tracked(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"data": "rows\n"})
    res = run_mlv(mlv_repo, "add", "data")
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_an_unreachable_remote_with_a_password_is_named_without_it(mlv_repo: Path) -> None:
    _tracked(mlv_repo)
    url = "http://alice:hunter2pw@127.0.0.1:9/store?sig=SIGSECRET&v=1"
    assert run_mlv(mlv_repo, "remote", "add", "-d", "web", url).exit_code == 0
    for args in (("push",), ("status", "--cloud"), ("gc", "-w", "--cloud")):
        proc = victim(mlv_repo, *args)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "hunter2pw" not in out and "SIGSECRET" not in out, out
        assert "Traceback" not in out
        assert "remote 'web' (http://alice:***@127.0.0.1:9/store?sig=***&v=1)" in out, out


@pytest.mark.slow
def test_a_missing_bucket_with_a_signature_is_named_without_it(
        mlv_repo: Path, s3_bucket: str, s3_endpoint: str) -> None:
    _tracked(mlv_repo)
    url = f"s3://{s3_bucket}-gone/p?X-Amz-Signature=SIGSECRET"
    for args in (("remote", "add", "-d", "store", url),
                 ("remote", "modify", "store", "endpoint_url", s3_endpoint)):
        assert run_mlv(mlv_repo, *args).exit_code == 0
    for args in (("push",), ("gc", "-w", "--cloud")):
        proc = victim(mlv_repo, *args)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "SIGSECRET" not in out, out
        assert "X-Amz-Signature=***" in out, out


def test_a_library_error_quoting_the_password_is_masked() -> None:
    import fsspec

    from mlv.remote import FsspecRemote, RemoteError

    url = "memory://bob:pa55word@host/x?token=T0KEN"
    remote = FsspecRemote("r", url, 1, fsspec.filesystem("memory"), "bob:pa55word@host/x")
    with pytest.raises(RemoteError) as caught, remote.errors():
        raise OSError("cannot open bob:pa55word@host/x (token T0KEN)")
    assert "pa55word" not in caught.value.message and "T0KEN" not in caught.value.message
    assert "bob:***@host" in caught.value.message


# ---- 5. manifests are read with a size limit -----------------------------------------------

def _folder_on_remote(mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path
                      ) -> tuple[Path, str]:
    """A tracked folder pushed to a folder remote, then dropped from the cache; returns
    the remote's folder and the manifest's id."""
    import shutil

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    make_tree(mlv_repo, {"data": {"a.txt": "a\n", "b.txt": "b\n"}})
    for args in (("add", "data"), ("push",)):
        res = run_mlv(mlv_repo, *args)
        assert res.exit_code == 0, res.output
    oid = next(line.split()[-1] for line in (mlv_repo / "data.mlv").read_text().splitlines()
               if "xxh128" in line)
    shutil.rmtree(mlv_repo / ".mlv" / "cache" / "xxh128")
    return url, oid


@pytest.mark.slow
def test_a_huge_manifest_on_a_remote_is_refused(mlv_repo: Path, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    url, oid = _folder_on_remote(mlv_repo, request, tmp_path)
    path = url / "xxh128" / oid[:2] / oid[2:]
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:  # sparse: takes no disk
        f.truncate(257 << 20)
    proc = victim(mlv_repo, "status", "--cloud")
    assert_one_error(proc, oid, "larger than 256 MiB")


@pytest.mark.parametrize("where", [pytest.param("cache", marks=pytest.mark.slow), "remote"])
def test_a_manifest_over_the_limit_is_refused(mlv, mlv_repo: Path, request: pytest.FixtureRequest,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             where: str) -> None:
    """The same with the limit lowered to a few bytes (the cache's copy too)."""
    from mlv import manifest

    url, oid = _folder_on_remote(mlv_repo, request, tmp_path)
    if where == "cache":
        res = run_mlv(mlv_repo, "fetch")
        assert res.exit_code == 0, res.output
    monkeypatch.setattr(manifest, "MAX_BYTES", 20, raising=False)
    res = mlv("status", "--cloud", cwd=mlv_repo)
    assert res.exit_code == 1, res.output
    assert f"{oid} is larger than" in res.output  # "directory manifest" or "cache object"
    monkeypatch.setattr(manifest, "MAX_BYTES", 256 << 20)
    res = mlv("status", "--cloud", cwd=mlv_repo)
    assert res.exit_code == 0, res.output


# ---- 6. deeply nested JSON/TOML params and metrics are one error line ----------------------

def _deep_json(depth: int, key: str) -> str:
    return f'{{"{key}": 1, "deep": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


DEEP = {
    "json-5000": ("params.json", '{"lr": 1, "deep": ' + "[" * 5000 + "]" * 5000 + "}"),
    "json-950": ("params.json", _deep_json(950, "lr")),
    "toml-5000": ("params.toml", "lr = 1\ndeep = " + "[" * 5000 + "]" * 5000 + "\n"),
    "toml-950": ("params.toml", "lr = 1\ndeep = " + "[" * 950 + "]" * 950 + "\n"),
}


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.slow) if case in ("json-5000", "toml-950") else case
    for case in sorted(DEEP)])
def test_deeply_nested_params_are_one_error(mlv_repo: Path, case: str) -> None:
    name, text = DEEP[case]
    make_tree(mlv_repo, {name: "lr = 1\n" if name.endswith(".toml") else '{"lr": 1}',
                         "mlv.yaml": f"stages:\n  s:\n    cmd: echo hi > out.txt\n"
                                     f"    params: [{{{name}: [lr]}}]\n    outs: [out.txt]\n"})
    res = run_mlv(mlv_repo, "repro")  # a lock entry: status then reads the params
    assert res.exit_code == 0, res.output
    (mlv_repo / name).write_text(text)
    for args in (("params", "show"), ("status",), ("repro",)):
        assert_one_error(victim(mlv_repo, *args), name, "nested deeper than 100 levels")


@pytest.mark.parametrize("depth", [5000, 950])
def test_deeply_nested_metrics_are_one_error(mlv_repo: Path, depth: int) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "stages:\n  s:\n    cmd: echo 1 > m.json\n"
                                     "    metrics: [m.json]\n",
                         "m.json": '{"acc": 1}'})
    assert run_mlv(mlv_repo, "repro").exit_code == 0
    text = ('{"acc": 1, "deep": ' + "[" * depth + "]" * depth + "}" if depth > 1000
            else _deep_json(depth, "acc"))
    (mlv_repo / "m.json").write_text(text)
    assert_one_error(victim(mlv_repo, "metrics", "show"), "m.json",
                     "nested deeper than 100 levels")
    proc = victim(mlv_repo, "status")  # a metric's content is not read by status
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
