"""One conformance suite for every remote backend: memory, a local folder and S3 (moto).

The folder and S3 remotes are built the way a user's command builds them: `mlv remote
add` (and `remote modify … endpoint_url`), then `mlv.api.remote.resolve`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mlv.api import remote as remote_api
from mlv.hashing import HASH_NAME, hash_bytes
from mlv.remote import InvalidKeyError, Remote, RemoteError, key_of
from mlv.remote.memory import MemoryRemote
from mlv.repo import Repo
from tests.conftest import Result

Mlv = Callable[..., Result]
MANY = 300  # more than EXISTS_ONE_BY_ONE: `has` takes the listing path


def ok(res: Result) -> None:
    assert res.exit_code == 0, res.output


@pytest.fixture(params=["memory", "local", pytest.param("s3", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, mlv_repo: Path, tmp_path: Path, mlv: Mlv
            ) -> Remote:
    """A fresh, empty remote of each kind."""
    if request.param == "memory":
        return MemoryRemote()
    if request.param == "local":
        folder = tmp_path / "remote-store"
        folder.mkdir()
        ok(mlv("remote", "add", "-d", "store", str(folder), cwd=mlv_repo))
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        ok(mlv("remote", "add", "-d", "store", f"s3://{bucket}/project", cwd=mlv_repo))
        ok(mlv("remote", "modify", "store", "endpoint_url", endpoint, cwd=mlv_repo))
    return remote_api.resolve(Repo.find(str(mlv_repo)))


def make_objects(folder: Path, count: int) -> dict[str, Path]:
    """`count` files named by their object ids (as in a cache), of different sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for i in range(count):
        data = f"object {i}\n".encode() * (i % 7 + 1)
        oid = hash_bytes(data)
        path = folder / oid
        path.write_bytes(data)
        found[oid] = path
    return found


class Bytes:
    """A progress callback that counts files done and bytes moved."""

    def __init__(self) -> None:
        self.files = self.bytes = self.total_files = 0

    def __call__(self, files: int = 0, nbytes: int = 0, total_files: int = 0,
                 total_bytes: int = 0, wire: int = 0) -> None:
        self.files += files
        self.bytes += nbytes
        self.total_files += total_files


# ---- objects --------------------------------------------------------------------------------

def test_objects_upload_list_has_download_open(backend: Remote, tmp_path: Path) -> None:
    objects = make_objects(tmp_path / "cache", MANY)
    oids = sorted(objects)
    progress = Bytes()
    assert backend.upload([(str(p), oid) for oid, p in objects.items()], progress) == {}
    assert progress.files == progress.total_files == MANY
    assert progress.bytes == sum(p.stat().st_size for p in objects.values())

    assert backend.list_oids() == set(oids)
    mtimes = backend.list_mtimes()
    assert set(mtimes) == set(oids)
    assert all(m is None or isinstance(m, float) for m in mtimes.values())
    absent = [hash_bytes(f"absent {i}".encode()) for i in range(MANY)]
    assert backend.has(oids + absent) == set(oids)  # many: one listing
    assert backend.has(oids[:5] + absent[:5]) == set(oids[:5])  # few: one request each
    assert backend.has([]) == set()

    arrived: dict[str, bytes] = {}
    items = [(oid, str(tmp_path / f"dl-{oid}")) for oid in oids]
    failures = backend.download(items, None,
                                after=lambda oid, path, _: arrived.update({oid: Path(path)
                                                                        .read_bytes()}))
    assert failures == {}
    assert arrived == {oid: objects[oid].read_bytes() for oid in oids}
    with backend.open(oids[0]) as f:
        assert f.read() == objects[oids[0]].read_bytes()


def test_objects_are_keys_of_the_cache_layout(backend: Remote, tmp_path: Path) -> None:
    objects = make_objects(tmp_path / "cache", 3)
    assert backend.upload([(str(p), oid) for oid, p in objects.items()], None) == {}
    assert backend.list_keys(HASH_NAME) == {key_of(oid): p.stat().st_size
                                            for oid, p in objects.items()}
    oid = next(iter(objects))
    assert backend.get_key(key_of(oid)) == objects[oid].read_bytes()


def test_download_of_a_missing_object_fails_only_that_object(backend: Remote,
                                                             tmp_path: Path) -> None:
    objects = make_objects(tmp_path / "cache", 2)
    present, _ = sorted(objects)
    backend.upload([(str(objects[present]), present)], None)
    missing = hash_bytes(b"never uploaded")
    seen: list[str] = []
    failures = backend.download([(present, str(tmp_path / "a")), (missing, str(tmp_path / "b"))],
                                None, after=lambda oid, path, _: seen.append(oid))
    assert list(failures) == [missing]
    assert isinstance(failures[missing], FileNotFoundError)
    assert seen == [present]
    assert (tmp_path / "a").read_bytes() == objects[present].read_bytes()
    with pytest.raises(FileNotFoundError):
        backend.open(missing).read()


def test_upload_refuses_a_symlink_in_the_cache(backend: Remote, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not an object\n")
    link = tmp_path / "link"
    link.symlink_to(secret)
    oid = hash_bytes(secret.read_bytes())
    failures = backend.upload([(str(link), oid)], None)
    assert list(failures) == [oid]
    assert "not a regular file" in str(failures[oid])
    assert backend.list_oids() == set()


def test_delete_objects(backend: Remote, tmp_path: Path) -> None:
    objects = make_objects(tmp_path / "cache", 20)
    oids = sorted(objects)
    backend.upload([(str(p), oid) for oid, p in objects.items()], None)
    assert backend.delete(oids[:10]) == {}
    assert backend.list_oids() == set(oids[10:])
    assert backend.has(oids[:12]) == set(oids[10:12])


def test_namespaces_are_apart(backend: Remote, tmp_path: Path) -> None:
    objects = make_objects(tmp_path / "cache", 2)
    first, second = sorted(objects)
    runs = backend.with_namespace("runs")
    runs.upload([(str(objects[first]), first)], None)
    backend.upload([(str(objects[second]), second)], None)
    assert runs.list_oids() == {first}
    assert backend.list_oids() == {second}
    assert set(backend.list_keys("runs")) == {key_of(first, "runs")}


# ---- keys -----------------------------------------------------------------------------------

DATA = bytes(range(256)) * 4  # 1024 bytes


def test_put_and_get_keys(backend: Remote) -> None:
    backend.put_key("mlv-remote.json", b'{"format": 2}')
    backend.put_key("packs/ab/abcdef", DATA)
    assert backend.get_key("mlv-remote.json") == b'{"format": 2}'
    assert backend.get_key("packs/ab/abcdef") == DATA
    backend.put_key("mlv-remote.json", b"replaced")
    assert backend.get_key("mlv-remote.json") == b"replaced"
    backend.put_key("empty", b"")
    assert backend.get_key("empty") == b""


@pytest.mark.parametrize(("start", "end"), [
    (None, None), (0, None), (None, 10), (0, 10), (10, 20), (1023, None), (1000, 2000),
    (0, 1024), (0, 5000), (1024, None), (1024, 2000), (2000, None), (5, 5), (10, 5),
    (None, 0), (0, 1)])
def test_ranged_get(backend: Remote, start: int | None, end: int | None) -> None:
    backend.put_key("packs/ab/range", DATA)
    assert backend.get_key("packs/ab/range", start, end) == DATA[start:end]


@pytest.mark.parametrize(("start", "end"), [(None, None), (0, None), (0, 10), (3, None),
                                            (0, 0)])
def test_ranged_get_of_an_empty_key(backend: Remote, start: int | None, end: int | None
                                   ) -> None:
    backend.put_key("empty", b"")
    assert backend.get_key("empty", start, end) == b""


@pytest.mark.parametrize(("start", "end"), [(None, None), (0, 10), (5, None), (5, 5)])
def test_a_missing_key_is_file_not_found(backend: Remote, start: int | None, end: int | None
                                         ) -> None:
    backend.put_key("packs/ab/there", b"x")
    with pytest.raises(FileNotFoundError):
        backend.get_key("packs/ab/missing", start, end)
    with pytest.raises(FileNotFoundError):
        backend.get_key("nowhere/at/all", start, end)


@pytest.mark.parametrize(("start", "end"), [(0, 10), (10, 20), (1000, 2000), (0, 1024),
                                            (0, 5000), (1024, 2000), (5, 5), (0, 1)])
def test_bulk_reads_give_what_ranged_gets_give(backend: Remote, start: int, end: int
                                               ) -> None:
    """A pull reads packs with get_bulk (on S3 a faster path): same bytes, same errors."""
    backend.put_key("packs/ab/range", DATA)
    backend.put_key("empty", b"")
    assert backend.get_bulk("packs/ab/range", start, end) == DATA[start:end]
    assert backend.get_bulk("empty", start, end) == b""
    with pytest.raises(FileNotFoundError):
        backend.get_bulk("packs/ab/missing", start, end)


@pytest.mark.slow
def test_s3_bulk_reads_do_not_need_s3fs_and_fall_back_to_it(
        s3_endpoint: str, s3_bucket: str) -> None:
    from mlv.remote import s3
    from mlv.remote.open import open_remote

    options = {"url": f"s3://{s3_bucket}/p", "endpoint_url": s3_endpoint}
    remote = open_remote("store", options, 4)
    remote.put_key("packs/ab/range", DATA)
    fs_cat = remote.fs.cat_file  # type: ignore[attr-defined]

    def no_s3fs(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("read through s3fs")

    remote.fs.cat_file = no_s3fs  # type: ignore[attr-defined]
    assert remote.get_bulk("packs/ab/range", 100, 900) == DATA[100:900]
    remote.fs.cat_file = fs_cat  # type: ignore[attr-defined]
    # a fast path that cannot reach the endpoint: s3fs's path gives the bytes, and the
    # fast path is not tried again
    remote.ranges = s3.RangeReader({**options, "endpoint_url": "http://127.0.0.1:9"})  # type: ignore[attr-defined]
    assert remote.get_bulk("packs/ab/range", 0, 1024) == DATA[:1024]
    assert not remote.ranges.usable  # type: ignore[attr-defined]
    assert remote.get_bulk("packs/ab/range", 1024, 2000) == DATA[1024:2000]


def test_put_key_file_streams_a_big_file(backend: Remote, tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    path = tmp_path / "pack.tmp"
    path.write_bytes(data)
    progress = Bytes()
    backend.put_key_file("packs/cd/cdef", str(path), progress)
    assert progress.bytes == len(data)
    assert backend.get_key("packs/cd/cdef") == data
    assert backend.get_key("packs/cd/cdef", 2**20, 2**20 + 100) == data[2**20:2**20 + 100]
    assert backend.list_keys("packs") == {"packs/cd/cdef": len(data)}


def test_list_keys_under_a_prefix(backend: Remote) -> None:
    keys = {"packs/ab/x1": b"1", "packs/ab/x2": b"22", "packs/cd/y": b"333",
            "packsy/z": b"4444", "index/seg": b"55555", "mlv-remote.json": b"{}",
            "recipes/ab/deep/er/r": b""}
    for key, data in keys.items():
        backend.put_key(key, data)
    packs = {k: len(v) for k, v in keys.items() if k.startswith("packs/")}
    assert backend.list_keys("packs") == packs
    assert backend.list_keys("packs/") == packs  # a trailing slash is the same folder
    assert backend.list_keys("packs/ab") == {"packs/ab/x1": 1, "packs/ab/x2": 2}
    assert backend.list_keys("recipes") == {"recipes/ab/deep/er/r": 0}
    assert backend.list_keys("") == {k: len(v) for k, v in keys.items()}
    assert backend.list_keys("nothing") == {}
    assert backend.list_keys("packs/ab/x1") == {}  # a key, not a folder
    assert backend.list_keys("pack") == {}  # folders, not string prefixes


def test_delete_keys_and_keys_exist(backend: Remote) -> None:
    for key in ("packs/ab/1", "packs/ab/2", "index/3"):
        backend.put_key(key, b"data")
    assert backend.keys_exist(["packs/ab/1", "index/3", "packs/ab/nope", "nope"]) == {
        "packs/ab/1", "index/3"}
    assert backend.keys_exist([]) == set()
    assert backend.delete_keys(["packs/ab/1", "index/3", "packs/ab/never-there"]) == {}
    assert backend.delete_keys([]) == {}
    assert backend.keys_exist(["packs/ab/1", "packs/ab/2", "index/3"]) == {"packs/ab/2"}
    assert backend.list_keys("") == {"packs/ab/2": 4}
    with pytest.raises(FileNotFoundError):
        backend.get_key("packs/ab/1")


BAD_KEYS = ["/etc/passwd", "../outside", "packs/../../outside", "packs//x", "packs/./x",
            "", "packs/x/", "a\nb", "a\x00b", "a\x7fb", "packs\\..\\x", ".git/config",
            "C:/x"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused(backend: Remote, key: str, tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"data")
    calls = [lambda: backend.put_key(key, b"data"),
             lambda: backend.put_key_file(key, str(path)),
             lambda: backend.get_key(key),
             lambda: backend.get_key(key, 0, 1),
             lambda: backend.keys_exist(["fine", key]),
             lambda: backend.delete_keys(["fine", key])]
    if key.rstrip("/") and key != "packs/x/":
        calls.append(lambda: backend.list_keys(key))
    for call in calls:
        with pytest.raises(InvalidKeyError) as caught:
            call()
        assert "invalid remote key" in caught.value.message
    assert backend.list_keys("") == {}
    assert not (tmp_path.parent / "outside").exists()


def test_a_remote_without_its_root_says_so(backend: Remote, request: pytest.FixtureRequest
                                           ) -> None:
    """Key operations on a remote whose folder or bucket is gone fail with one clear
    error, not with "missing key"."""
    if isinstance(backend, MemoryRemote):
        pytest.skip("a memory remote has no root to lose")
    if request.node.callspec.params["backend"] == "local":
        os.rmdir(backend.url)
    else:
        import boto3

        bucket = request.getfixturevalue("s3_bucket")
        boto3.client("s3", endpoint_url=request.getfixturevalue("s3_endpoint")
                     ).delete_bucket(Bucket=bucket)
    for call in (lambda: backend.get_key("mlv-remote.json"), lambda: backend.list_keys("packs"),
                 lambda: backend.keys_exist(["index/x"])):
        with pytest.raises(RemoteError) as caught:
            call()
        assert "does not exist" in caught.value.message


def test_s3_bulk_reads_never_take_more_than_the_range_asked_for() -> None:
    """A hostile S3 endpoint that answers a ranged GET with a huge body: the fast path
    reads only the bytes it asked for (the pack's blobs are then checked by hash)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlv.remote import s3

    body = b"x" * (8 << 20)

    class Flood(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass  # the client stopped reading: that is the point

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reader = s3.RangeReader({"endpoint_url": f"http://127.0.0.1:{server.server_port}",
                                 "access_key_id": "k", "secret_access_key": "s",
                                 "region": "us-east-1"})
        data = reader.get("bucket/packs/ab/cd", 100, 1124)
        assert data is not None and len(data) == 1024
    finally:
        server.shutdown()
        server.server_close()
