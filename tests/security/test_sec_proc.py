"""Issue 8, defects 8, 14 (remote `jobs`) and 15 (secrets), and the exit codes:

- `mlv repro` stopped by SIGTERM or SIGHUP stops its stages like Ctrl-C, records
  nothing for them and exits 143 / 129; no stage outlives mlv.
- An unexpected exception exits 3 with one line and a hint; usage errors exit 2.
- `mlv remote list` masks secret-looking options; config files holding them are 0600.
- A hand-edited remote `jobs` that is not a whole number is one ConfigError line.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import MLV, Result, one_error, run_mlv

Mlv = Callable[..., Result]


def ok(res: Result) -> Result:
    assert res.exit_code == 0, res.output
    return res




def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` (the machine may be busy: generous timeout, short naps)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphaned zombie may wait a long time
    for a container's init to reap it; it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def lock_stages(repo: Path) -> set[str]:
    path = repo / "mlv.lock"
    return set(yaml.safe_load(path.read_text())["stages"]) if path.exists() else set()


def run_cache_entries(repo: Path) -> list[Path]:
    runs = repo / ".mlv" / "cache" / "runs"
    return sorted(p for p in runs.glob("*/*")) if runs.exists() else []


# ---- defect 8: SIGTERM and SIGHUP stop the stages like Ctrl-C --------------------------

# The slow stage writes its shell's pid (its process group) and a child's pid, then waits
# for the child; with MLV_TEST_FAST set it finishes at once (the second, clean run).
SLOW = ('echo $$ > slow.pid; if [ -z "$MLV_TEST_FAST" ]; then sleep 300 & '
        'echo $! > child.pid; wait; fi; echo done > slow.txt')
TRAPS = {
    "dies": "",
    "ignores": "trap '' TERM; ",  # its children ignore SIGTERM too: killed after 2 s
    # A stage that traps the signal and exits 0 may have stopped halfway: not recorded.
    "exits-0": "trap 'echo half > slow.txt; exit 0' TERM; ",
}


def _kill_left(pids: list[int]) -> None:
    """Never leave a sleeping stage behind, even when the test fails."""
    for pid in pids:
        if running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _default_signals() -> None:
    """In the child: SIGINT, SIGTERM and SIGHUP at their defaults, as in a terminal or a CI
    job (a background or nohup'ed test run would pass them on ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("sig,stage", [
    (signal.SIGTERM, "dies"),
    pytest.param(signal.SIGTERM, "ignores", marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, "exits-0", marks=pytest.mark.slow),
    pytest.param(signal.SIGHUP, "dies", marks=pytest.mark.slow),
    pytest.param(signal.SIGHUP, "ignores", marks=pytest.mark.slow)])
def test_repro_stopped_by_a_signal_stops_the_stage_and_records_nothing(
        mlv: Mlv, mlv_repo: Path, sig: signal.Signals, stage: str) -> None:
    repo = mlv_repo
    ok(mlv("stage", "add", "-n", "quick", "-o", "quick.txt", "echo q > quick.txt", cwd=repo))
    ok(mlv("stage", "add", "-n", "slow", "-d", "quick.txt", "-o", "slow.txt",
           TRAPS[stage] + SLOW, cwd=repo))
    env = {k: v for k, v in os.environ.items() if k != "MLV_TEST_FAST"}
    proc = subprocess.Popen(MLV + ["repro"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_signals)
    pids: list[int] = []
    try:
        wait_for(lambda: (repo / "child.pid").exists() and (repo / "slow.pid").exists()
                 and proc.poll() is None, 120, "the slow stage to start")
        wait_for(lambda: bool((repo / "child.pid").read_text().strip()), 30, "child.pid")
        pids = [int((repo / name).read_text()) for name in ("slow.pid", "child.pid")]
        assert all(running(pid) for pid in pids)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        _kill_left(pids)
    try:
        wait_for(lambda: not any(running(pid) for pid in pids), 15, "the stage to end")
    except AssertionError:
        raise AssertionError(f"stage processes outlived mlv: {[p for p in pids if running(p)]}"
                             ) from None
    assert proc.returncode == 128 + sig, (proc.returncode, out, err)
    assert err.strip().splitlines()[-1] == f"aborted ({sig.name})", err
    assert "Traceback" not in err
    assert lock_stages(repo) == {"quick"}  # nothing recorded for the stopped stage
    assert len(run_cache_entries(repo)) == 1  # the quick stage's run only
    assert (repo / "slow.txt").exists() == (stage == "exits-0")  # its half output stays
    assert "slow" in mlv("status", cwd=repo).stdout
    # The next repro runs the stage again, alone, and records it.
    res = ok(run_mlv(repo, "repro", env={"MLV_TEST_FAST": "1"}))
    assert "running stage slow" in res.stdout and "running stage quick" not in res.stdout
    assert (repo / "slow.txt").read_text() == "done\n"
    assert lock_stages(repo) == {"quick", "slow"}
    assert len(run_cache_entries(repo)) == 2
    assert "everything is up to date" in ok(run_mlv(repo, "repro")).stdout


@pytest.mark.slow
def test_repro_keeps_sighup_ignored_under_nohup(mlv: Mlv, mlv_repo: Path) -> None:
    # `nohup mlv repro` must survive a closed terminal: an ignored SIGHUP stays ignored.
    repo = mlv_repo
    ok(mlv("stage", "add", "-n", "slow", "-o", "slow.txt",
           "echo x > started; sleep 2; echo done > slow.txt", cwd=repo))

    def nohup() -> None:
        _default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen(MLV + ["repro"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=nohup)
    try:
        wait_for(lambda: (repo / "started").exists() or proc.poll() is not None, 120,
                 "the stage to start")
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err)
    assert lock_stages(repo) == {"slow"}


# ---- exit codes ------------------------------------------------------------------------

def test_an_unexpected_exception_exits_3_with_one_line_and_a_hint(
        mlv: Mlv, mlv_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlv.api.status as api_status

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("internal state went wrong\nsecond line")

    monkeypatch.setattr(api_status, "status", broken)
    res = mlv("status", cwd=mlv_repo)
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    assert lines[0] == "error: unexpected RuntimeError: internal state went wrong"
    assert len(lines) == 2 and lines[1].startswith("hint: this is a bug in mlv"), lines
    log = lines[1].split("traceback is in ", 1)[1].split(". ", 1)[0]
    assert "RuntimeError: internal state went wrong" in Path(log).read_text()
    assert "MLV_DEBUG=1 mlv" in lines[1]
    Path(log).unlink()
    # MLV_DEBUG shows the traceback instead.
    monkeypatch.setenv("MLV_DEBUG", "1")
    with pytest.raises(RuntimeError):
        mlv("status", cwd=mlv_repo)


@pytest.mark.parametrize("args", [("statuz",), ("status", "--no-such-option"),
                                  ("remote", "add", "only-a-name"), ("config",)])
def test_usage_errors_exit_2(mlv: Mlv, mlv_repo: Path, args: tuple[str, ...]) -> None:
    res = mlv(*args, cwd=mlv_repo)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "unexpected" not in res.output


def test_user_errors_exit_1(mlv: Mlv, mlv_repo: Path) -> None:
    one_error(mlv("checkout", "no-such-path", cwd=mlv_repo))


# ---- defect 15: secrets ----------------------------------------------------------------

HAND_ADDED = """\
remote:
  sftp:
    url: sftp://deploy:hunter2-url@files.example.com/store
    password: hunter2-option
    key_passphrase: hunter2-phrase
  azure:
    url: az://container/store?sv=2024&sig=hunter2-sig
    account_key: hunter2-account
    sas_token: hunter2-sas
    connection_string: DefaultEndpointsProtocol=https;AccountKey=hunter2-conn
  s3:
    url: s3://bucket/store
    endpoint_url: http://127.0.0.1:9000
    region: eu-west-1
    access_key_id: hunter2-id
    secret_access_key: hunter2-secret
    session_token: hunter2-token
    client_kwargs: {aws_secret_access_key: hunter2-nested, region_name: eu-west-1}
"""


def test_remote_list_masks_every_secret_looking_value(mlv: Mlv, mlv_repo: Path) -> None:
    # Options added by hand to .mlv/config.local (mlv's own commands refuse these keys).
    (mlv_repo / ".mlv" / "config.local").write_text(HAND_ADDED)
    res = ok(run_mlv(mlv_repo, "remote", "list"))
    assert "hunter2" not in res.output, res.output
    lines = res.stdout.splitlines()
    for shown in ("sftp\tsftp://deploy:***@files.example.com/store", "    password: ***",
                  "    account_key: ***", "    sas_token: ***", "    connection_string: ***",
                  "azure\taz://container/store?sv=2024&sig=***", "    secret_access_key: ***",
                  "    endpoint_url: http://127.0.0.1:9000", "    region: eu-west-1"):
        assert shown in lines, (shown, lines)
    assert any("client_kwargs" in line and "***" in line and "eu-west-1" in line
               for line in lines), lines


def test_remote_commands_do_not_echo_secrets(mlv: Mlv, mlv_repo: Path) -> None:
    res = ok(mlv("remote", "add", "box", "sftp://me:hunter2@host/store", cwd=mlv_repo))
    assert "hunter2" not in res.output and "sftp://me:***@host/store" in res.stdout
    res = ok(mlv("remote", "modify", "--local", "box", "secret_access_key", "hunter2",
                 cwd=mlv_repo))
    assert "hunter2" not in res.output and "secret_access_key = ***" in res.stdout
    res = ok(mlv("remote", "modify", "box", "url", "sftp://me:hunter2@other/store",
                 cwd=mlv_repo))
    assert "hunter2" not in res.output
    # Credentials stay refused in the committed .mlv/config.
    error = one_error(mlv("remote", "modify", "box", "access_key_id", "hunter2",
                          cwd=mlv_repo))
    assert "committed" in error
    assert b"hunter2" not in (mlv_repo / ".mlv" / "config").read_bytes().replace(
        b"me:hunter2@other", b"")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_files_that_may_hold_keys_are_private(mlv: Mlv, mlv_repo: Path) -> None:
    old = os.umask(0o022)
    try:
        ok(mlv("remote", "add", "box", "s3://bucket/store", cwd=mlv_repo))
        ok(mlv("remote", "modify", "--local", "box", "secret_access_key", "k", cwd=mlv_repo))
        local = mlv_repo / ".mlv" / "config.local"
        assert mode(local) == 0o600
        ok(mlv("config", "--global", "core.jobs", "2", cwd=mlv_repo))
        user = Path(os.environ["HOME"]) / ".config" / "mlv" / "config"
        assert mode(user) == 0o600
        # The committed config stays readable; an existing stricter mode is kept, and an
        # older world-readable config.local is made private when mlv next writes it.
        committed = mlv_repo / ".mlv" / "config"
        assert mode(committed) == 0o644
        committed.chmod(0o600)
        local.chmod(0o644)
        ok(mlv("config", "core.jobs", "3", cwd=mlv_repo))
        ok(mlv("remote", "modify", "--local", "box", "region", "eu-west-1", cwd=mlv_repo))
        assert mode(committed) == 0o600 and mode(local) == 0o600
    finally:
        os.umask(old)


# ---- defect 14 (config part): a hand-edited remote `jobs` ------------------------------

@pytest.mark.parametrize("value", ["abc", "-1", "0", "true", "1.5", "[1]", "100000"])
def test_a_hand_edited_remote_jobs_is_one_config_error(mlv: Mlv, mlv_repo: Path,
                                                       tmp_path: Path, value: str) -> None:
    (mlv_repo / "f.txt").write_text("hi")
    ok(mlv("add", "f.txt", cwd=mlv_repo))
    store = tmp_path / "store"
    store.mkdir()
    config = mlv_repo / ".mlv" / "config"
    config.write_text(f"remote:\n  store:\n    url: {store}\n    jobs: {value}\n"
                      "core:\n  remote: store\n")
    for args in (("push",), ("status", "--cloud")):
        res = run_mlv(mlv_repo, *args)
        error = one_error(res)
        assert error.startswith("error: remote 'store': jobs: expected a whole number"), error
        assert str(config) in error
        assert "hint: set it with `mlv remote modify store jobs 8`" in res.stderr
    assert not any(store.iterdir())  # nothing was pushed


def test_a_valid_remote_jobs_still_works(mlv: Mlv, mlv_repo: Path, tmp_path: Path) -> None:
    (mlv_repo / "f.txt").write_text("hi")
    ok(mlv("add", "f.txt", cwd=mlv_repo))
    store = tmp_path / "store"
    store.mkdir()
    (mlv_repo / ".mlv" / "config.local").write_text(
        f"remote:\n  store:\n    url: {store}\n    jobs: '3'\ncore:\n  remote: store\n")
    assert "pushed 1 file" in ok(mlv("push", cwd=mlv_repo)).stdout
    res = mlv("remote", "modify", "--local", "store", "jobs", "5000", cwd=mlv_repo)
    assert "1 to 1024" in one_error(res)
