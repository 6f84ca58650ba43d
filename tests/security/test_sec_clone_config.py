"""What a clone's committed .mlv/config may choose about remotes (issue 8, found by the
second attacker review): where objects live, not how fsspec touches this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git, make_tree, run_mlv
from tests.conftest import one_error as _one_error


def _clone_with_config(attacker: Path, tmp_path: Path, config: str) -> Path:
    (attacker / ".mlv" / "config").write_text(config)
    git(attacker, "add", "-A")
    git(attacker, "commit", "-qm", "config")
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(attacker), str(victim))
    return victim


@pytest.mark.parametrize("url", [
    pytest.param(url, marks=pytest.mark.slow)
    for url in ("filecache://{remote}", "simplecache::file://{remote}", "reference://",
                "zip://x::file://{remote}.zip")] + ["memory://store"])
def test_a_committed_remote_may_not_choose_a_caching_protocol(mlv_repo: Path, tmp_path: Path,
                                                             url: str) -> None:
    remote, outside = tmp_path / "remote", tmp_path / "victimdir"
    remote.mkdir()
    outside.mkdir()
    (outside / "notes").write_text("mine")
    make_tree(mlv_repo, {"d": {"a": "x"}})
    assert run_mlv(mlv_repo, "add", "d").exit_code == 0
    config = (f"core: {{remote: r}}\nremote:\n  r:\n    url: {url.format(remote=remote)}\n"
              f"    target_protocol: file\n    cache_storage: {outside}\n")
    victim = _clone_with_config(mlv_repo, tmp_path, config)
    for args in (("status", "--cloud"), ("pull",), ("push",), ("gc", "-w", "--cloud")):
        line = _one_error(run_mlv(victim, *args))
        assert "in .mlv/config is not used" in line, line
    assert sorted(p.name for p in outside.iterdir()) == ["notes"]


def test_a_committed_remote_may_not_pass_fsspec_options(mlv_repo: Path, tmp_path: Path) -> None:
    config = ("core: {remote: r}\nremote:\n  r:\n    url: s3://bucket/x\n"
              "    endpoint_url: http://127.0.0.1:9\n    cache_storage: /tmp/x\n")
    victim = _clone_with_config(mlv_repo, tmp_path, config)
    line = _one_error(run_mlv(victim, "status", "--cloud"))
    assert "option 'cache_storage' in .mlv/config is not used" in line, line


def test_the_users_own_config_may_choose_any_protocol(mlv_repo: Path) -> None:
    # memory:// in .mlv/config.local is the user's own choice: used as given.
    local = mlv_repo / ".mlv" / "config.local"
    local.write_text("core: {remote: m}\nremote:\n  m:\n    url: memory://store\n")
    make_tree(mlv_repo, {"d": {"a": "x"}})
    assert run_mlv(mlv_repo, "add", "d").exit_code == 0
    res = run_mlv(mlv_repo, "push")
    # used as given: the memory store has no folder yet, and fsspec says so
    assert "is not used" not in res.output and "store does not exist" in res.output, res.output


def test_a_committed_gc_grace_may_only_lengthen(mlv_repo: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    make_tree(shared / "xxh128" / "ab", {"c" * 30: "someone else's data"})
    config = (f"core: {{remote: r}}\nremote:\n  r:\n    url: {shared}\n"
              "gc:\n  grace: '0'\n")
    victim = _clone_with_config(mlv_repo, tmp_path, config)
    line = _one_error(run_mlv(victim, "gc", "-w", "--cloud"))
    assert "gc.grace 0 in .mlv/config is not used" in line, line
    assert (shared / "xxh128" / "ab" / ("c" * 30)).exists()
    # the user may still choose: for one run, or for this clone
    res = run_mlv(victim, "gc", "-w", "--cloud", "--grace", "0", "--dry")
    assert res.exit_code == 0, res.output
    res = run_mlv(mlv_repo, "config", "gc.grace", "1h")
    assert res.exit_code == 0 and "set in .mlv/config.local" in res.stdout, res.output
    assert "grace" in (mlv_repo / ".mlv" / "config.local").read_text()
    assert run_mlv(mlv_repo, "config", "gc.grace", "2w").stdout == ""
    assert "2w" in (mlv_repo / ".mlv" / "config").read_text()


@pytest.mark.slow
def test_names_and_commands_from_a_clone_cannot_drive_the_terminal(mlv_repo: Path,
                                                                  tmp_path: Path) -> None:
    esc = "\x1b"
    name = f"t{esc}]0;PWNED{esc}\\x{esc}[2J.mlv"
    (mlv_repo / name).write_text("outs:\n- path: ok\n  xxh128: " + "6" * 32 + "\n  size: 6\n")
    (mlv_repo / "mlv.yaml").write_text(
        'stages:\n  s:\n    cmd: "echo \\e]52;c;ZXZpbA==\\a \\r\\e[2K harmless"\n')
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "escapes")
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(victim))
    for args in (("status",), ("stage", "list"), ("repro", "--dry"), ("status", "--json")):
        res = run_mlv(victim, *args)
        shown = res.stdout + res.stderr
        assert esc not in shown and "\r" not in shown and "\x07" not in shown, (args, shown)
    # --json stays valid and reads back the real name
    data = json.loads(run_mlv(victim, "status", "--json").stdout)
    assert data["ok"]["pointer"] == name
    assert "\\u001b]0;PWNED" in run_mlv(victim, "status").stdout


@pytest.mark.parametrize("out", [".gitignore", "mlv.yaml", "mlv.lock", "sub/x.mlv",
                                 "self.mlv", "sub/MLV.YAML"])
def test_a_pointer_may_not_restore_mlvs_own_files(mlv_repo: Path, out: str) -> None:
    (mlv_repo / "self.mlv").write_text(
        f"outs:\n- path: {out}\n  xxh128: {'7a' * 16}\n  size: 3\n")
    for args in (("status",), ("checkout", "--force")):
        line = _one_error(run_mlv(mlv_repo, *args))
        assert "one of the files mlv reads" in line, line


def test_a_stage_may_not_output_mlvs_own_files(mlv_repo: Path) -> None:
    (mlv_repo / "a").mkdir()
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  s:\n    cmd: echo\n    wdir: a\n    outs: [../mlv.lock]\n")
    line = _one_error(run_mlv(mlv_repo, "repro", "--dry"))
    assert "one of the files mlv reads" in line, line


def test_two_pointers_may_not_claim_one_path(mlv_repo: Path) -> None:
    body = f"outs:\n- path: data\n  xxh128: {'8b' * 16}\n  size: 3\n"
    (mlv_repo / "data.mlv").write_text(body)
    (mlv_repo / "other.mlv").write_text(body)
    line = _one_error(run_mlv(mlv_repo, "checkout", "--force"))
    assert "data is tracked twice" in line, line


def test_add_refuses_mlvs_own_files(mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text("stages: {}\n")
    line = _one_error(run_mlv(mlv_repo, "add", "mlv.yaml"))
    assert "one of the files mlv reads" in line, line
    assert not (mlv_repo / "mlv.yaml.mlv").exists()


@pytest.mark.slow
def test_gc_cloud_on_a_terminal_asks_before_deleting(mlv_repo: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    shared = tmp_path / "shared"
    old = shared / "xxh128" / "ab" / ("c" * 30)
    make_tree(old.parent, {old.name: "someone else's data"})
    os.utime(old, (1, 1))  # long past any grace period
    assert run_mlv(mlv_repo, "remote", "add", "-d", "r", str(shared)).exit_code == 0
    for answer, kept in (("n\n", True), ("y\n", False)):
        master, slave = os.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "mlv", "gc", "-w", "--cloud"],
                                cwd=mlv_repo, stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.close(slave)
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=60)
        os.close(master)
        assert str(shared) in err, err  # the prompt names where the objects go
        assert old.exists() == kept, (out, err)
        assert proc.returncode == (1 if kept else 0), (out, err)
