"""Remotes never hand out or keep damaged data.

pull verifies every object before it enters the cache; push uploads a directory manifest
only after every file it lists; a push or pull killed with SIGKILL leaves every object on
both sides whole under its final name and is finished by running it again. Every test runs
against a local-folder remote and against a real S3-protocol endpoint (moto on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import (
    MLV,
    add_remote,
    file_xxh,
    git,
    make_tree,
    read_tree,
    run_mlv,
    xxh,
)

TMP_MARK = ".mlvtmp-"


# ---- helpers ---------------------------------------------------------------------------

def pointer_oid(pointer: Path) -> str:
    [oid] = re.findall(r"xxh128: (\S+)", pointer.read_text())
    return oid


def store_check(base: Path) -> tuple[dict[str, Path], list[Path]]:
    """Every object under its final name in a store folder (`<root>/xxh128`), checked: each
    hashes to its name. Returns (objects, temp files); anything else fails the test."""
    objects: dict[str, Path] = {}
    temps: list[Path] = []
    if not base.exists():
        return objects, temps
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(folder, name)
            rel = path.relative_to(base).as_posix()
            if TMP_MARK in name:
                assert path.is_file(), f"temp entry that is not a file: {rel}"
                temps.append(path)
                continue
            if path.is_dir():
                assert path.parent == base and len(name) == 2, f"stray folder {rel}"
                continue
            assert path.parent != base, f"stray file in the store: {rel}"
            oid = path.parent.name + name
            assert re.fullmatch(r"[0-9a-f]{32}(\.dir)?", oid), f"stray file {rel}"
            assert file_xxh(path) == oid.removesuffix(".dir"), \
                f"object {oid} under its final name does not hold the bytes it names"
            objects[oid] = path
    return objects, temps


def cache_check(repo: Path) -> tuple[dict[str, Path], list[Path]]:
    return store_check(repo / ".mlv" / "cache" / "xxh128")


class RemoteStore:
    """The test's own view of a remote: files on disk, or boto3 against the endpoint."""

    def __init__(self, kind: str, url: str, endpoint: str | None = None) -> None:
        self.kind = kind
        if kind == "local":
            self.folder = Path(url)
        else:
            import boto3

            self.bucket, _, self.prefix = url.removeprefix("s3://").partition("/")
            self.client = boto3.client("s3", endpoint_url=endpoint)

    @classmethod
    def setup(cls, repo: Path, kind: str, request: pytest.FixtureRequest, tmp_path: Path,
              name: str = "store", fmt: int | None = None) -> RemoteStore:
        """`fmt=1` for a test that reads or changes the remote's objects one by one."""
        url = add_remote(repo, kind, request, tmp_path, name=name, fmt=fmt)
        endpoint = request.getfixturevalue("s3_endpoint") if kind == "s3" else None
        return cls(kind, url, endpoint)

    def path(self, oid: str) -> Path:
        return self.folder / "xxh128" / oid[:2] / oid[2:]

    def key(self, oid: str) -> str:
        return f"{self.prefix}/xxh128/{oid[:2]}/{oid[2:]}"

    def listing(self) -> dict[str, tuple[int, str | None]]:
        """oid -> (size, S3 ETag) of every object under a final name."""
        found: dict[str, tuple[int, str | None]] = {}
        if self.kind == "local":
            base = self.folder / "xxh128"
            for path in base.glob("*/*") if base.exists() else []:
                if TMP_MARK not in path.name:
                    found[path.parent.name + path.name] = (path.stat().st_size, None)
            return found
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/")
        for page in pages:
            for item in page.get("Contents", []):
                parts = item["Key"].split("/")
                assert parts[-3] == "xxh128", f"stray key on the remote: {item['Key']}"
                found[parts[-2] + parts[-1]] = (item["Size"], item["ETag"].strip('"'))
        return found

    def oids(self) -> set[str]:
        return set(self.listing())

    def exists(self, oid: str) -> bool:
        if self.kind == "local":
            return self.path(oid).exists()
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(oid))
            return True
        except self.client.exceptions.ClientError:
            return False

    def read(self, oid: str) -> bytes:
        if self.kind == "local":
            return self.path(oid).read_bytes()
        return self.client.get_object(Bucket=self.bucket, Key=self.key(oid))["Body"].read()

    def write(self, oid: str, data: bytes) -> None:
        """Overwrite an object (objects are read-only on disk: chmod first)."""
        if self.kind == "local":
            path = self.path(oid)
            path.chmod(0o644)
            path.write_bytes(data)
            path.chmod(0o444)
        else:
            self.client.put_object(Bucket=self.bucket, Key=self.key(oid), Body=data)

    def delete(self, oid: str) -> None:
        if self.kind == "local":
            self.path(oid).unlink()
        else:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(oid))

    def check(self, known: dict[str, str]) -> set[str]:
        """Check that every object under a final name holds the bytes its name says; return
        the oids. A local remote is re-hashed file by file. On S3 each object's ETag (the
        MD5 of the bytes the server stored) must equal the MD5 of the object's good bytes
        (`known`: oid -> md5, from a cache whose objects were re-hashed); objects not in
        `known`, plus a sample and every object over 1 MiB, are downloaded and re-hashed."""
        if self.kind == "local":
            objects, _ = store_check(self.folder / "xxh128")
            return set(objects)
        listing = self.listing()
        rng = random.Random(len(listing))
        for oid, (size, etag) in listing.items():
            fetch = oid not in known or size > (1 << 20) or rng.random() < 0.02
            if oid in known:
                assert etag == known[oid], f"remote object {oid} holds other bytes than its name"
            if fetch:
                data = self.read(oid)
                assert xxh(data) == oid.removesuffix(".dir"), \
                    f"remote object {oid} does not hold the bytes it names"
        return set(listing)


def clone(src: Path, dst: Path) -> Path:
    git(src.parent, "clone", "-q", str(src), str(dst))
    return dst


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def no_temps(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(f"*{TMP_MARK}*")
                  if ".git" not in p.relative_to(root).parts)


# ---- pull verifies every object ----------------------------------------------------------

def test_pull_refuses_objects_that_fail_verification(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = mlv_repo
    rng = random.Random(7)
    files = {f"f{i}.bin": rng.randbytes(1000 + 100 * i) for i in range(6)}
    make_tree(repo, {"data": files,
                     "models": {"cfg.txt": "depth: 3\n", "w.bin": rng.randbytes(5000)}})
    res = mlv("add", "data", "models", cwd=repo)
    assert res.exit_code == 0, res.output
    remote = RemoteStore.setup(repo, remote_kind, request, tmp_path, fmt=1)
    commit_all(repo, "data")
    res = mlv("push", cwd=repo)
    assert res.exit_code == 0, res.output

    changed = xxh(files["f1.bin"])
    truncated = xxh(files["f4.bin"])
    models_dir = pointer_oid(repo / "models.mlv")
    data_dir = pointer_oid(repo / "data.mlv")
    # Same length, other bytes; a truncated object; a manifest that still parses but
    # names another file (so only the hash check can catch it).
    remote.write(changed, bytes(b ^ 0x5A for b in files["f1.bin"]))
    remote.write(truncated, files["f4.bin"][:700])
    good_manifest = remote.read(models_dir)
    bad_manifest = good_manifest.replace(b'"cfg.txt"', b'"cfg.txx"')
    assert bad_manifest != good_manifest and len(bad_manifest) == len(good_manifest)
    remote.write(models_dir, bad_manifest)

    work = clone(repo, tmp_path / "work")
    res = mlv("pull", cwd=work)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    errors = "\n".join(line for line in res.stderr.splitlines() if line.startswith("error: "))
    assert "failed verification" in errors, res.stderr
    for oid in (changed, truncated, models_dir):
        assert oid in errors, f"{oid} not named in: {res.stderr}"

    objects, temps = cache_check(work)
    assert temps == [], f"temp files left in the cache: {temps}"
    assert not {changed, truncated, models_dir} & set(objects)
    good = {xxh(v) for k, v in files.items() if k not in ("f1.bin", "f4.bin")} | {data_dir}
    assert good <= set(objects)
    # Nothing damaged reaches the workspace; everything good does, byte for byte.
    expected = {k: v for k, v in files.items() if k not in ("f1.bin", "f4.bin")}
    assert read_tree(work / "data") == expected
    assert not (work / "models").exists()
    assert no_temps(work) == []

    # The repair the hint describes: fsck --remote lists the damaged objects and the
    # manifests that vouch for them (push trusts a manifest on the remote to mean its
    # files are there); once those are deleted, a push from a good copy restores them.
    res = mlv("fsck", "--remote", "store", cwd=work)
    assert res.exit_code == 1, res.output
    damaged = set(re.findall(r"^damaged (\S+)", res.stdout, re.M))
    assert damaged == {changed, truncated, models_dir}, res.output
    vouching = set(re.findall(r"^lists-damaged (\S+)", res.stdout, re.M))
    assert vouching == {data_dir}, res.output
    for oid in damaged | vouching:
        remote.delete(oid)
    res = mlv("push", cwd=repo)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("pushed 4 files, "), res.output
    res = mlv("pull", cwd=work)
    assert res.exit_code == 0, res.output
    assert read_tree(work / "data") == files
    assert read_tree(work / "models") == read_tree(repo / "models")


# ---- push uploads a manifest only after its files -----------------------------------------

class FailingS3Proxy:
    """An S3 endpoint on 127.0.0.1 in front of moto that refuses uploads of chosen keys with
    400 BadDigest (S3's answer when bytes were damaged on the way); everything else is
    passed through unchanged. mlv talks to it through its normal s3fs code path."""

    HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
           "trailer", "upgrade", "content-length"}

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.fail: set[str] = set()  # key suffixes whose PUTs are refused
        self.refused: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(parts)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def handle_any(self) -> None:
                data = self.body()
                path = urlsplit(self.path).path
                if self.command == "PUT" and any(path.endswith(k) for k in proxy.fail):
                    proxy.refused.append(path)
                    payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest"
                               b"</Code><Message>The Content-MD5 you specified did not match "
                               b"what was received.</Message></Error>")
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                up = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                                timeout=60)
                try:
                    up.putrequest(self.command, self.path, skip_host=True,
                                  skip_accept_encoding=True)
                    for key, value in self.headers.items():
                        if key.lower() not in proxy.HOP:
                            up.putheader(key, value)
                    up.putheader("Content-Length", str(len(data)))
                    up.endheaders(data)
                    resp = up.getresponse()
                    payload = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for key, value in resp.getheaders():
                        if key.lower() not in proxy.HOP | {"server", "date"}:
                            self.send_header(key, value)
                    if self.command == "HEAD":
                        length = resp.getheader("Content-Length")
                        if length is not None:
                            self.send_header("Content-Length", length)
                        self.end_headers()
                        return
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    up.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_push_uploads_a_manifest_only_after_all_its_files(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = mlv_repo
    rng = random.Random(11)
    files = {f"f{i:02d}.bin": rng.randbytes(2000 + i) for i in range(12)}
    make_tree(repo, {"data": files})
    res = mlv("add", "data", cwd=repo)
    assert res.exit_code == 0, res.output
    dir_oid = pointer_oid(repo / "data.mlv")
    file_oids = {xxh(v) for v in files.values()}
    prefixes = [o[:2] for o in file_oids | {dir_oid}]
    # The upload that fails: a file whose prefix folder it shares with no other object.
    victim = min(o for o in file_oids if prefixes.count(o[:2]) == 1)
    remote = RemoteStore.setup(repo, remote_kind, request, tmp_path, fmt=1)
    commit_all(repo, "data")

    proxy = None
    blocker = None
    if remote_kind == "s3":
        proxy = FailingS3Proxy(request.getfixturevalue("s3_endpoint"))
        request.addfinalizer(proxy.close)
        proxy.fail.add(f"xxh128/{victim[:2]}/{victim[2:]}")
        res = run_mlv(repo, "remote", "modify", "store", "endpoint_url", proxy.url)
        assert res.exit_code == 0, res.output
    else:
        blocker = remote.folder / "xxh128" / victim[:2]
        blocker.parent.mkdir(parents=True)
        if os.geteuid() != 0:
            blocker.mkdir(mode=0o555)  # the remote refuses to write in this folder
        else:  # root writes anywhere: a file where the folder must go cannot be written in
            blocker.write_bytes(b"")

    res = mlv("push", cwd=repo)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert victim in res.stderr and dir_oid in res.stderr, res.stderr
    assert "failed" in res.stderr
    if proxy:
        assert proxy.refused, "the upload was never refused: the test did not test anything"
    on_remote = remote.oids()
    assert dir_oid not in on_remote, "a manifest was uploaded before all of its files"
    assert victim not in on_remote
    assert on_remote == file_oids - {victim}

    # Fix the cause: the next push finishes and uploads only what is missing.
    if proxy:
        proxy.fail.clear()
    elif blocker.is_dir():
        blocker.chmod(0o755)
    else:
        blocker.unlink()
    res = mlv("push", cwd=repo)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("pushed 2 files, "), res.output
    assert remote.check({}) == file_oids | {dir_oid}
    res = mlv("push", cwd=repo)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("everything is up to date (store: 13 objects)"), res.output


# ---- kill -9 during push and pull ---------------------------------------------------------

NFILES = 2000
BIG = 32 << 20


@pytest.fixture(scope="module")
def big_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A repo with `data/` (2000 files of 4-16 KiB and one of 32 MiB) added and committed,
    and the MD5 of every cached object by oid (for checking S3 ETags)."""
    root = tmp_path_factory.mktemp("big") / "repo"
    root.mkdir()
    env = {**os.environ, "HOME": str(tmp_path_factory.mktemp("bighome")),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@x"}

    def run(*args: str) -> None:
        subprocess.run(list(args), cwd=root, env=env, check=True, capture_output=True)

    run("git", "init", "-q", "-b", "main")
    run(*MLV, "init")
    rng = random.Random(2000)
    files = {f"f{i:04d}.bin": rng.randbytes(rng.randint(4096, 16384)) for i in range(NFILES)}
    files["big.bin"] = rng.randbytes(BIG)
    make_tree(root, {"data": files})
    run(*MLV, "add", "-q", "data")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "data")
    objects, temps = cache_check(root)
    assert temps == [] and len(objects) == NFILES + 2
    shutil.rmtree(root / ".mlv" / "tmp", ignore_errors=True)
    return root, {oid: hashlib.md5(p.read_bytes()).hexdigest() for oid, p in objects.items()}


def copy_repo(template: Path, dst: Path) -> None:
    """Copy a repo: its data and cache objects, which no test changes, are hard-linked
    (fast); everything else (git, config) is copied."""
    def copy(src: str, target: str) -> None:
        parts = Path(src).relative_to(template).parts
        if parts[0] == "data" or parts[:2] == (".mlv", "cache"):
            os.link(src, target)
        else:
            shutil.copy2(src, target)

    shutil.copytree(template, dst, symlinks=True, copy_function=copy)


def run_and_kill(cwd: Path, args: list[str], when: Callable[[float], bool],
                 timeout: float = 120) -> bool:
    """Run `python -m mlv ARGS` and SIGKILL it as soon as when(seconds since start) holds.
    True if it was killed; False if it finished first (then it must have succeeded)."""
    proc = subprocess.Popen(MLV + args, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            assert elapsed < timeout, f"mlv {args} did not finish in {timeout} s"
            if when(elapsed):
                proc.send_signal(signal.SIGKILL)  # a no-op if it has just finished
                break
            time.sleep(0.002)
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == -signal.SIGKILL:
        return True
    assert proc.returncode == 0, err.decode()
    return False


def moved(res, verb: str) -> int:
    found = re.search(rf"^{verb} (\d+) files?, ", res.stdout, re.M)
    if found:
        return int(found.group(1))
    assert "everything is up to date" in res.stdout, res.output
    return 0


@pytest.mark.slow
def test_interrupted_push_and_pull_are_finished_by_running_them_again(
    mlv, big_template: tuple[Path, dict[str, str]], remote_kind: str,
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    template, md5s = big_template
    total = len(md5s)
    repo = tmp_path / "repo"
    copy_repo(template, repo)
    expected = read_tree(repo / "data")
    remote = RemoteStore.setup(repo, remote_kind, request, tmp_path, fmt=1)
    commit_all(repo, "remote")

    # push: killed as the first objects arrive, then once about a quarter and two thirds
    # of them are up. Objects go up roughly in the order of their ids, so one cheap
    # request tells how far a push got.
    order = sorted(md5s)
    counts = []
    for when in (lambda t: remote.exists(order[0]),
                 lambda t: remote.exists(order[total // 4]),
                 lambda t: remote.exists(order[2 * total // 3])):
        run_and_kill(repo, ["push", "-q"], when)
        counts.append(len(remote.oids()))
    on_remote = remote.check(md5s)  # whole objects only, under their final names
    assert on_remote <= set(md5s)
    assert any(0 < n < total for n in counts), f"no kill landed mid-transfer: {counts}"
    before = len(on_remote)
    res = run_mlv(repo, "push")
    assert res.exit_code == 0, res.output
    assert moved(res, "pushed") == total - before < total  # only what was still missing
    assert remote.check(md5s) == set(md5s)

    # pull into a fresh clone: killed as the first objects arrive, then once a third of
    # them are being (or have been) downloaded into the cache.
    work = clone(repo, tmp_path / "work")
    cache = work / ".mlv" / "cache" / "xxh128"

    def in_cache() -> int:  # objects and temp files
        return sum(len(os.listdir(p)) for p in cache.iterdir()) if cache.exists() else 0

    for when in (lambda t: in_cache() > 0, lambda t: in_cache() >= total // 3):
        killed = run_and_kill(work, ["pull", "-q"], when)
        objects, temps = cache_check(work)  # every final name holds the bytes it names
    assert killed and not (work / "data").exists()
    kept = [o for o in objects if not o.endswith(".dir")]  # checked last, see below
    res = run_mlv(work, "pull")
    assert res.exit_code == 0, res.output
    assert moved(res, "fetched") == total - len(objects)
    assert set(cache_check(work)[0]) == set(md5s)
    assert read_tree(work / "data") == expected
    res = mlv("status", cwd=work)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output
    # The second kill came once a third of the objects were downloaded or in flight: the
    # complete ones must have been kept, not left as temp files to download again.
    assert kept, (f"a pull killed after downloading >= {total // 3} objects kept none of "
                  f"them ({len(temps)} temp files left in the cache)")


@pytest.mark.slow
def test_pull_killed_while_writing_the_workspace_is_completed_by_the_next_pull(
    mlv, big_template: tuple[Path, dict[str, str]], remote_kind: str,
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The objects are all fetched already; the kill lands while checkout writes `data/`."""
    template, _ = big_template
    repo = tmp_path / "repo"
    copy_repo(template, repo)
    expected = read_tree(repo / "data")
    RemoteStore.setup(repo, remote_kind, request, tmp_path)
    commit_all(repo, "remote")
    shutil.rmtree(repo / "data")

    killed = run_and_kill(repo, ["pull", "-q"], lambda t: (repo / "data").exists()
                          or any(TMP_MARK in n for n in os.listdir(repo)))
    assert killed, "the kill did not land while the workspace was written"
    res = run_mlv(repo, "pull")
    assert res.exit_code == 0, res.output
    assert read_tree(repo / "data") == expected
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output
    # Nothing half-written is left behind for the user to find (or to commit).
    left = [t for t in no_temps(repo) if not t.startswith(".mlv/")]
    assert left == [], f"the killed pull's half-written folder is left in the workspace: {left}"
    assert git(repo, "status", "--porcelain") == ""


# ---- status after pull; fetch with a manifest missing on the remote -----------------------

def test_pulled_clone_is_clean_and_fetch_names_a_missing_manifest(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = mlv_repo
    make_tree(repo, {"data": {"a.txt": "alpha", "sub": {"b.bin": b"\0\1\2" * 999}},
                     "other": {"c.txt": "gamma"}, "model.bin": b"m" * 3000})
    res = mlv("add", "data", "other", "model.bin", cwd=repo)
    assert res.exit_code == 0, res.output
    remote = RemoteStore.setup(repo, remote_kind, request, tmp_path)
    commit_all(repo, "data")
    res = mlv("push", cwd=repo)
    assert res.exit_code == 0, res.output

    work = clone(repo, tmp_path / "work")
    res = mlv("pull", cwd=work)
    assert res.exit_code == 0, res.output
    for name in ("data", "other"):
        assert read_tree(work / name) == read_tree(repo / name)
    assert (work / "model.bin").read_bytes() == b"m" * 3000
    res = mlv("status", cwd=work)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output
    assert git(work, "status", "--porcelain") == ""

    other_dir = pointer_oid(repo / "other.mlv")
    remote.delete(other_dir)
    fresh = clone(repo, tmp_path / "fresh")
    res = mlv("fetch", "other", cwd=fresh)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "missing" in errors[0] and other_dir in errors[0], res.stderr
    assert other_dir not in cache_check(fresh)[0]
    # The rest of the remote is fine.
    res = mlv("fetch", "data", cwd=fresh)
    assert res.exit_code == 0, res.output
    assert pointer_oid(repo / "data.mlv") in cache_check(fresh)[0]
