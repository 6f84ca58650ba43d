"""`mlv remote …` configuration, and the one-line errors a remote that cannot be used gives."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    Result,
    add_remote,
    cache_objects,
    git,
    make_tree,
    remote_oids,
    run_mlv,
)

Mlv = Callable[..., Result]


def ok(res: Result) -> None:
    assert res.exit_code == 0, res.output


def config(repo: Path, local: bool = False) -> dict:
    path = repo / ".mlv" / ("config.local" if local else "config")
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def remote_options(repo: Path, name: str, local: bool = False) -> dict:
    return config(repo, local).get("remote", {}).get(name, {})


def default_remote(repo: Path, local: bool = False) -> str | None:
    return config(repo, local).get("core", {}).get("remote")


def assert_error(res: Result, in_error: tuple[str, ...] = (), in_hint: tuple[str, ...] = (),
                 code: int = 1) -> tuple[str, str]:
    """Exit `code`, exactly one `error:` line and a `hint:` line, no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output, res.output
    assert "this is a bug in mlv" not in res.output, res.output
    lines = res.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    hints = [line for line in lines if line.startswith("hint:")]
    assert len(errors) == 1, res.output
    assert hints, res.output
    for needle in in_error:
        assert needle.lower() in errors[0].lower(), res.output
    for needle in in_hint:
        assert needle.lower() in " ".join(hints).lower(), res.output
    return errors[0], " ".join(hints)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tracked(mlv_repo: Path, mlv: Mlv) -> Path:
    """A repo with a small folder and a file added (a handful of objects)."""
    make_tree(mlv_repo, {"data": {"a.txt": "alpha", "sub": {"b.bin": b"\x00beta"}},
                         "model.bin": b"weights"})
    ok(mlv("add", "data", "model.bin", cwd=mlv_repo))
    return mlv_repo


# ---- remote add ----------------------------------------------------------------------

def test_add_writes_the_committed_config(mlv_repo: Path, mlv: Mlv) -> None:
    res = mlv("remote", "add", "store", "/mnt/store", cwd=mlv_repo)
    ok(res)
    assert "store" in res.stdout
    assert remote_options(mlv_repo, "store") == {"url": "/mnt/store"}
    assert default_remote(mlv_repo) is None
    assert remote_options(mlv_repo, "store", local=True) == {}


def test_add_default_sets_core_remote(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "store", "s3://bucket/project", cwd=mlv_repo))
    assert config(mlv_repo)["remote"] == {"store": {"url": "s3://bucket/project"}}
    assert config(mlv_repo)["core"]["remote"] == "store"
    ok(mlv("remote", "add", "--default", "other", "/x", cwd=mlv_repo))
    assert default_remote(mlv_repo) == "other"


def test_add_local_writes_config_local_only(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "--local", "mine", "/home/me/store", cwd=mlv_repo))
    assert remote_options(mlv_repo, "mine", local=True) == {"url": "/home/me/store"}
    assert default_remote(mlv_repo, local=True) == "mine"
    assert "mine" not in config(mlv_repo).get("remote", {})
    assert default_remote(mlv_repo) is None
    res = mlv("remote", "list", cwd=mlv_repo)
    ok(res)
    assert "mine (default)" in res.stdout


def test_add_existing_name_is_an_error(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "/one", cwd=mlv_repo))
    res = mlv("remote", "add", "store", "/two", cwd=mlv_repo)
    assert_error(res, in_error=("store", "already exists"))
    assert remote_options(mlv_repo, "store") == {"url": "/one"}


@pytest.mark.parametrize("name", ["a b", "a/b"])
def test_add_invalid_name_is_a_usage_error(mlv_repo: Path, mlv: Mlv, name: str) -> None:
    before = (mlv_repo / ".mlv" / "config").read_bytes()
    res = mlv("remote", "add", name, "/store", cwd=mlv_repo)
    assert_error(res, in_error=("invalid remote name", name), code=2)
    assert (mlv_repo / ".mlv" / "config").read_bytes() == before


# ---- remote list ---------------------------------------------------------------------

def test_list_shows_names_urls_default_and_options(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "store", "s3://bucket/project", cwd=mlv_repo))
    ok(mlv("remote", "add", "backup", "/mnt/backup", cwd=mlv_repo))
    ok(mlv("remote", "modify", "store", "endpoint_url", "http://127.0.0.1:9000", cwd=mlv_repo))
    ok(mlv("remote", "modify", "store", "region", "eu-west-3", cwd=mlv_repo))
    res = mlv("remote", "list", cwd=mlv_repo)
    ok(res)
    lines = res.stdout.splitlines()
    store = next(line for line in lines if line.startswith("store"))
    backup = next(line for line in lines if line.startswith("backup"))
    assert "(default)" in store and "s3://bucket/project" in store
    assert "(default)" not in backup and "/mnt/backup" in backup
    assert "endpoint_url: http://127.0.0.1:9000" in res.stdout
    assert "region: eu-west-3" in res.stdout


def test_list_masks_secrets(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "store", "s3://bucket/project", cwd=mlv_repo))
    secrets = {"access_key_id": "AKIAEXAMPLEKEY123", "secret_access_key": "wJalrXUtnFEMIsecret",
               "session_token": "FQoGZXIvYXdzEtoken"}
    for key, value in secrets.items():
        ok(mlv("remote", "modify", "--local", "store", key, value, cwd=mlv_repo))
    res = mlv("remote", "list", cwd=mlv_repo)
    ok(res)
    for key, value in secrets.items():
        assert f"{key}: ***" in res.stdout
        assert value not in res.output


# ---- remote modify -------------------------------------------------------------------

OPTIONS = [("endpoint_url", "http://127.0.0.1:9000", "http://127.0.0.1:9000"),
           ("profile", "team", "team"),
           ("region", "eu-central-1", "eu-central-1"),
           ("jobs", "8", 8),
           ("url", "s3://other/path", "s3://other/path")]


def test_modify_sets_options(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "s3://bucket/project", cwd=mlv_repo))
    for key, value, stored in OPTIONS:
        ok(mlv("remote", "modify", "store", key, value, cwd=mlv_repo))
        assert remote_options(mlv_repo, "store")[key] == stored
    assert remote_options(mlv_repo, "store") == {key: stored for key, _, stored in OPTIONS}
    res = mlv("remote", "list", cwd=mlv_repo)
    ok(res)
    for key, _, stored in OPTIONS[:-1]:
        assert f"{key}: {stored}" in res.stdout
    assert "s3://other/path" in res.stdout


def test_modify_unknown_option_lists_the_known_ones(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "/store", cwd=mlv_repo))
    res = mlv("remote", "modify", "store", "endpoint", "http://x", cwd=mlv_repo)
    _, hint = assert_error(res, in_error=("endpoint",))
    for known in ("url", "endpoint_url", "profile", "region", "jobs"):
        assert known in hint
    assert remote_options(mlv_repo, "store") == {"url": "/store"}


def test_modify_unknown_remote_is_an_error(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "/store", cwd=mlv_repo))
    res = mlv("remote", "modify", "nope", "region", "x", cwd=mlv_repo)
    assert_error(res, in_error=("nope", "store"))
    assert "nope" not in config(mlv_repo).get("remote", {})


@pytest.mark.parametrize("value", ["0", "x", "-3"])
def test_modify_jobs_refuses_non_positive_whole_numbers(mlv_repo: Path, mlv: Mlv,
                                                        value: str) -> None:
    ok(mlv("remote", "add", "store", "/store", cwd=mlv_repo))
    res = mlv("remote", "modify", "store", "jobs", "--", value, cwd=mlv_repo)
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error:") and "jobs" in res.stderr
    assert "Traceback" not in res.output
    assert "jobs" not in remote_options(mlv_repo, "store")


SECRETS = ("access_key_id", "secret_access_key", "session_token")


def test_secrets_are_refused_in_the_committed_config(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "s3://bucket/p", cwd=mlv_repo))
    for key in SECRETS:
        res = mlv("remote", "modify", "store", key, "TOPSECRETVALUE", cwd=mlv_repo)
        error, _ = assert_error(res, in_error=(key,), in_hint=("--local", "AWS_ACCESS_KEY_ID"))
        assert "commit" in error
    for name in ("config", "config.local"):
        path = mlv_repo / ".mlv" / name
        assert not path.exists() or b"TOPSECRETVALUE" not in path.read_bytes()


def test_secrets_are_accepted_in_the_ignored_local_config(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "s3://bucket/p", cwd=mlv_repo))
    for key in SECRETS:
        ok(mlv("remote", "modify", "--local", "store", key, f"SECRET-{key}", cwd=mlv_repo))
    assert remote_options(mlv_repo, "store", local=True) == {k: f"SECRET-{k}" for k in SECRETS}
    assert b"SECRET-" not in (mlv_repo / ".mlv" / "config").read_bytes()
    # git ignores the file: it can never be committed by accident
    assert git(mlv_repo, "check-ignore", ".mlv/config.local").strip() == ".mlv/config.local"
    assert "config.local" not in git(mlv_repo, "status", "--porcelain", "-uall")


def test_modify_unset_removes_an_option(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "s3://bucket/p", cwd=mlv_repo))
    ok(mlv("remote", "modify", "store", "endpoint_url", "http://127.0.0.1:9", cwd=mlv_repo))
    ok(mlv("remote", "modify", "store", "region", "us-east-2", cwd=mlv_repo))
    ok(mlv("remote", "modify", "--unset", "store", "endpoint_url", cwd=mlv_repo))
    assert remote_options(mlv_repo, "store") == {"url": "s3://bucket/p", "region": "us-east-2"}
    res = mlv("remote", "list", cwd=mlv_repo)
    assert "endpoint_url" not in res.stdout
    # unsetting what is not set says so
    res = mlv("remote", "modify", "--unset", "store", "endpoint_url", cwd=mlv_repo)
    assert res.exit_code == 1 and res.stderr.startswith("error:"), res.output


def test_modify_unset_local_secret(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "store", "s3://bucket/p", cwd=mlv_repo))
    ok(mlv("remote", "modify", "--local", "store", "secret_access_key", "s", cwd=mlv_repo))
    ok(mlv("remote", "modify", "--local", "--unset", "store", "secret_access_key",
           cwd=mlv_repo))
    assert remote_options(mlv_repo, "store", local=True) == {}
    assert remote_options(mlv_repo, "store") == {"url": "s3://bucket/p"}


# ---- remote remove / default ---------------------------------------------------------

def test_remove_forgets_the_remote_and_clears_the_default(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "store", "s3://bucket/p", cwd=mlv_repo))
    ok(mlv("remote", "add", "keep", "/keep", cwd=mlv_repo))
    ok(mlv("remote", "modify", "--local", "store", "secret_access_key", "s", cwd=mlv_repo))
    res = mlv("remote", "remove", "store", cwd=mlv_repo)
    ok(res)
    assert "store" not in config(mlv_repo).get("remote", {})
    assert "store" not in config(mlv_repo, local=True).get("remote", {})
    assert default_remote(mlv_repo) is None
    assert remote_options(mlv_repo, "keep") == {"url": "/keep"}
    res = mlv("remote", "list", cwd=mlv_repo)
    assert "store" not in res.stdout and "keep" in res.stdout
    res = mlv("remote", "default", cwd=mlv_repo)
    assert res.exit_code == 1 and "no default remote" in res.stderr, res.output


def test_remove_unknown_remote_is_an_error(mlv_repo: Path, mlv: Mlv) -> None:
    res = mlv("remote", "remove", "ghost", cwd=mlv_repo)
    assert_error(res, in_error=("ghost",))


def test_default_prints_and_sets(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "store", "/store", cwd=mlv_repo))
    ok(mlv("remote", "add", "other", "/other", cwd=mlv_repo))
    res = mlv("remote", "default", cwd=mlv_repo)
    ok(res)
    assert res.stdout.strip() == "store"
    ok(mlv("remote", "default", "other", cwd=mlv_repo))
    assert default_remote(mlv_repo) == "other"
    assert mlv("remote", "default", cwd=mlv_repo).stdout.strip() == "other"
    res = mlv("remote", "list", cwd=mlv_repo)
    assert "other (default)" in res.stdout and "store (default)" not in res.stdout


def test_default_unknown_name_is_an_error(mlv_repo: Path, mlv: Mlv) -> None:
    ok(mlv("remote", "add", "-d", "store", "/store", cwd=mlv_repo))
    res = mlv("remote", "default", "nope", cwd=mlv_repo)
    assert_error(res, in_error=("nope", "store"))
    assert default_remote(mlv_repo) == "store"


def test_default_without_any_is_an_error(mlv_repo: Path, mlv: Mlv) -> None:
    res = mlv("remote", "default", cwd=mlv_repo)
    assert_error(res, in_error=("no default remote",))


# ---- where a relative URL points -----------------------------------------------------

def test_relative_local_url_is_resolved_against_the_repo_root(tracked: Path, mlv: Mlv,
                                                               tmp_path: Path) -> None:
    store = tmp_path / "store"  # the repo is tmp_path/repo, so ../store from its root
    store.mkdir()
    ok(mlv("remote", "add", "-d", "store", "../store", cwd=tracked))
    sub = tracked / "deep" / "er"
    sub.mkdir(parents=True)
    res = mlv("push", cwd=sub)
    ok(res)
    assert remote_oids(tracked) == set(cache_objects(tracked))
    assert not (tracked / "deep" / "store").exists()
    assert not (tracked / "store").exists()
    # and back: pull from a subfolder finds the same store
    shutil.rmtree(tracked / ".mlv" / "cache")
    shutil.rmtree(tracked / "data")
    ok(mlv("pull", cwd=sub))
    assert (tracked / "data" / "sub" / "b.bin").read_bytes() == b"\x00beta"


# ---- errors: which remote ------------------------------------------------------------

def test_no_default_remote(tracked: Path, mlv: Mlv) -> None:
    for command in ("push", "fetch", "pull", "status --cloud"):
        res = mlv(*command.split(), cwd=tracked)
        assert_error(res, in_error=("no default remote",), in_hint=("-r", "mlv remote add -d"))


def test_unknown_remote_names_the_configured_ones(tracked: Path, mlv: Mlv,
                                                  tmp_path: Path) -> None:
    ok(mlv("remote", "add", "-d", "store", str(tmp_path), cwd=tracked))
    ok(mlv("remote", "add", "backup", str(tmp_path), cwd=tracked))
    for command in ("push", "fetch", "pull", "status --cloud"):
        res = mlv(*command.split(), "-r", "nope", cwd=tracked)
        assert_error(res, in_error=("nope", "store", "backup"), in_hint=("mlv remote",))


def test_local_remote_folder_that_does_not_exist(tracked: Path, mlv: Mlv,
                                                 tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "store"
    ok(mlv("remote", "add", "-d", "store", str(missing), cwd=tracked))
    for command in ("push", "fetch", "pull"):
        res = mlv(command, cwd=tracked)
        assert_error(res, in_error=(str(missing), "does not exist"))
        shutil.rmtree(tracked / ".mlv" / "cache", ignore_errors=True)  # fetch must ask
    assert not missing.exists()  # mlv does not invent a remote folder from a typo


def missing_bucket_remote(repo: Path, mlv: Mlv, endpoint: str, bucket: str) -> str:
    bucket = f"{bucket}-gone"
    ok(mlv("remote", "add", "-d", "store", f"s3://{bucket}/project", cwd=repo))
    ok(mlv("remote", "modify", "store", "endpoint_url", endpoint, cwd=repo))
    return bucket


def test_missing_bucket(tracked: Path, mlv: Mlv, s3_endpoint: str, s3_bucket: str) -> None:
    bucket = missing_bucket_remote(tracked, mlv, s3_endpoint, s3_bucket)
    for command in ("push", "fetch", "pull"):
        res = mlv(command, cwd=tracked)
        assert_error(res, in_error=(f"bucket '{bucket}' does not exist",), in_hint=("bucket",))
        shutil.rmtree(tracked / ".mlv" / "cache", ignore_errors=True)  # fetch must ask


def test_missing_bucket_status_cloud(tracked: Path, mlv: Mlv, s3_endpoint: str,
                                     s3_bucket: str) -> None:
    bucket = missing_bucket_remote(tracked, mlv, s3_endpoint, s3_bucket)
    shutil.rmtree(tracked / ".mlv" / "cache")  # the folder's manifest must come from the remote
    res = mlv("status", "--cloud", cwd=tracked)
    assert_error(res, in_error=(f"bucket '{bucket}' does not exist",), in_hint=("bucket",))


def test_missing_bucket_when_many_objects_are_asked_about(tracked: Path, mlv: Mlv,
                                                          s3_endpoint: str,
                                                          s3_bucket: str) -> None:
    # more objects than mlv asks about one by one: the question goes through a listing
    make_tree(tracked, {"many": {f"f{i:03}.txt": f"file {i}\n" for i in range(80)}})
    ok(mlv("add", "many", cwd=tracked))
    bucket = missing_bucket_remote(tracked, mlv, s3_endpoint, s3_bucket)
    res = mlv("status", "--cloud", cwd=tracked)
    assert_error(res, in_error=(f"bucket '{bucket}' does not exist",), in_hint=("bucket",))


@pytest.mark.slow
def test_unreachable_endpoint_gives_up_quickly(tracked: Path, mlv: Mlv, s3_bucket: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    ok(mlv("remote", "add", "-d", "store", f"s3://{s3_bucket}/project", cwd=tracked))
    ok(mlv("remote", "modify", "store", "endpoint_url", endpoint, cwd=tracked))
    start = time.monotonic()
    res = run_mlv(tracked, "push", timeout=90)
    elapsed = time.monotonic() - start
    assert elapsed < 45, f"gave up only after {elapsed:.0f} s"
    assert_error(res, in_error=("cannot reach", endpoint), in_hint=("endpoint_url",))


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS_* variables and an empty HOME (no ~/.aws): botocore finds no credentials."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    home = tmp_path / "empty-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254


@pytest.mark.slow
@pytest.mark.parametrize("command", ["push", "pull"])
def test_missing_credentials(tracked: Path, mlv: Mlv, request: pytest.FixtureRequest,
                             tmp_path: Path, command: str) -> None:
    add_remote(tracked, "s3", request, tmp_path)
    request.getfixturevalue("no_aws_credentials")
    if command == "pull":
        shutil.rmtree(tracked / ".mlv" / "cache")
    res = run_mlv(tracked, command, timeout=90)
    assert_error(res, in_error=("no credentials",), in_hint=("AWS_ACCESS_KEY_ID",))


# ---- wrong credentials: a second moto server that checks signatures ------------------

@pytest.fixture(scope="module")
def auth_server() -> Iterator[dict[str, str]]:
    """moto on another free port of 127.0.0.1, with one IAM user allowed to use S3.

    moto's IAM switch (INITIAL_NO_AUTH_ACTION_COUNT) is a process-wide setting, so the
    test turns it on only while its own commands run (see `iam_enforced`).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    admin = {"endpoint_url": endpoint, "region_name": "us-east-1",
             "aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    iam = boto3.client("iam", **admin)
    user = f"mlv-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    bucket = f"auth-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", **admin).create_bucket(Bucket=bucket)
    yield {"endpoint": endpoint, "bucket": bucket, "key": key["AccessKeyId"],
           "secret": key["SecretAccessKey"]}
    server.stop()


@pytest.fixture
def iam_enforced() -> Iterator[None]:
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        yield


@pytest.mark.slow
@pytest.mark.parametrize("command", ["push", "pull"])
@pytest.mark.parametrize("where", ["env", "local-config"])
def test_wrong_credentials_are_refused(tracked: Path, mlv: Mlv, auth_server: dict[str, str],
                                       no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch,
                                       request: pytest.FixtureRequest, where: str,
                                       command: str) -> None:
    url = f"s3://{auth_server['bucket']}/{uuid.uuid4().hex[:8]}"
    ok(mlv("remote", "add", "-d", "store", url, cwd=tracked))
    ok(mlv("remote", "modify", "store", "endpoint_url", auth_server["endpoint"], cwd=tracked))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def use(secret: str) -> None:
        if where == "env":
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_server["key"])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        else:
            for key, value in (("access_key_id", auth_server["key"]),
                               ("secret_access_key", secret)):
                ok(mlv("remote", "modify", "--local", "store", key, value, cwd=tracked))

    request.getfixturevalue("iam_enforced")
    # the right key works: the server really checks, and mlv really sends these credentials
    use(auth_server["secret"])
    ok(run_mlv(tracked, "push", timeout=90))
    if command == "pull":
        shutil.rmtree(tracked / ".mlv" / "cache")
    use("not-the-secret")
    res = run_mlv(tracked, command, timeout=90)
    assert_error(res, in_error=("access denied",), in_hint=("credentials",))
    if command == "pull":
        assert not cache_objects(tracked)

