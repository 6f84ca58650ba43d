"""`mlv config`: three YAML layers (global < repo < local), validated keys and values."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.conftest import cache_objects, make_tree, read_tree


def ok(res) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output


def home() -> Path:
    return Path(os.environ["HOME"])


def global_file() -> Path:
    return home() / ".config" / "mlv" / "config"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_set_writes_repo_config_and_get_reads_it(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("config", "cache.type", "hardlink", cwd=mlv_repo)
    ok(res)
    assert res.stdout == ""
    assert load(mlv_repo / ".mlv" / "config")["cache"] == {"type": "hardlink"}
    assert not (mlv_repo / ".mlv" / "config.local").exists()
    assert not global_file().exists()

    res = mlv("config", "cache.type", cwd=mlv_repo)
    ok(res)
    assert res.stdout == "hardlink\n"
    # From a subfolder too.
    (mlv_repo / "sub").mkdir()
    assert mlv("config", "cache.type", cwd=mlv_repo / "sub").stdout == "hardlink\n"


def test_values_are_normalised_and_typed(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    ok(mlv("config", "cache.type", "hardlink, copy", cwd=mlv_repo))
    ok(mlv("config", "core.jobs", "8", cwd=mlv_repo))
    cfg = load(mlv_repo / ".mlv" / "config")
    assert cfg["cache"]["type"] == "hardlink,copy"
    assert cfg["core"]["jobs"] == 8
    assert mlv("config", "core.jobs", cwd=mlv_repo).stdout == "8\n"


def test_local_writes_a_git_ignored_file(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo_cfg = (mlv_repo / ".mlv" / "config").read_bytes()

    ok(mlv("config", "--local", "cache.dir", "/big/disk/cache", cwd=mlv_repo))

    local = mlv_repo / ".mlv" / "config.local"
    assert load(local) == {"cache": {"dir": "/big/disk/cache"}}
    assert (mlv_repo / ".mlv" / "config").read_bytes() == repo_cfg
    check = subprocess.run(["git", "check-ignore", "-q", ".mlv/config.local"], cwd=mlv_repo)
    assert check.returncode == 0
    check = subprocess.run(["git", "check-ignore", "-q", ".mlv/config"], cwd=mlv_repo)
    assert check.returncode == 1
    assert subprocess.run(["git", "status", "--porcelain"], cwd=mlv_repo, capture_output=True,
                          text=True).stdout == ""


def test_global_works_outside_a_repository(tmp_path: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "nowhere"
    outside.mkdir()

    ok(mlv("config", "--global", "core.jobs", "3", cwd=outside))

    assert load(global_file()) == {"core": {"jobs": 3}}
    res = mlv("config", "core.jobs", cwd=outside)
    ok(res)
    assert res.stdout == "3\n"
    ok(mlv("config", "--global", "--unset", "core.jobs", cwd=outside))
    assert "jobs" not in (load(global_file()) or {}).get("core", {})


@pytest.mark.parametrize("level", [[], ["--local"]])
def test_repo_levels_need_a_repository(tmp_path: Path, mlv, level: list[str]) -> None:  # type: ignore[no-untyped-def]
    res = mlv("config", *level, "core.jobs", "3", cwd=tmp_path)
    assert res.exit_code == 1
    assert "mlv init" in res.stderr
    assert "Traceback" not in res.output
    assert not global_file().exists()


def test_xdg_config_home_is_honoured(tmp_path: Path, mlv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    ok(mlv("config", "--global", "core.jobs", "5", cwd=tmp_path))
    assert load(tmp_path / "xdg" / "mlv" / "config") == {"core": {"jobs": 5}}


def test_layers_local_over_repo_over_global(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    def effective() -> str:
        res = mlv("config", "cache.type", cwd=mlv_repo)
        ok(res)
        return res.stdout.strip()

    ok(mlv("config", "--global", "cache.type", "symlink", cwd=mlv_repo))
    assert effective() == "symlink"
    ok(mlv("config", "cache.type", "hardlink", cwd=mlv_repo))
    assert effective() == "hardlink"
    ok(mlv("config", "--local", "cache.type", "copy", cwd=mlv_repo))
    assert effective() == "copy"

    ok(mlv("config", "--local", "--unset", "cache.type", cwd=mlv_repo))
    assert effective() == "hardlink"
    ok(mlv("config", "--unset", "cache.type", cwd=mlv_repo))
    assert effective() == "symlink"
    ok(mlv("config", "--global", "--unset", "cache.type", cwd=mlv_repo))
    # Nothing set anywhere: the built-in default, or a plain "not set".
    res = mlv("config", "cache.type", cwd=mlv_repo)
    if res.exit_code == 0:
        assert res.stdout == "reflink,copy\n"
    else:
        assert "not set" in res.stderr


def test_layers_decide_what_add_does(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    """The effective value is the one used: global says hardlink, local says copy."""
    ok(mlv("config", "--global", "cache.type", "hardlink", cwd=mlv_repo))
    make_tree(mlv_repo, {"a.bin": b"a", "b.bin": b"b"})
    ok(mlv("add", "a.bin", cwd=mlv_repo))
    obj_a = cache_objects(mlv_repo)[xxhash.xxh3_128_hexdigest(b"a")]
    assert os.path.samefile(mlv_repo / "a.bin", obj_a)

    ok(mlv("config", "--local", "cache.type", "copy", cwd=mlv_repo))
    ok(mlv("add", "b.bin", cwd=mlv_repo))
    obj_b = cache_objects(mlv_repo)[xxhash.xxh3_128_hexdigest(b"b")]
    assert not os.path.samefile(mlv_repo / "b.bin", obj_b)


def test_unset(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    ok(mlv("config", "core.jobs", "2", cwd=mlv_repo))
    ok(mlv("config", "cache.type", "copy", cwd=mlv_repo))

    res = mlv("config", "--unset", "core.jobs", cwd=mlv_repo)

    ok(res)
    cfg = load(mlv_repo / ".mlv" / "config")
    assert "jobs" not in (cfg.get("core") or {})
    assert cfg["cache"] == {"type": "copy"}
    res = mlv("config", "--unset", "core.jobs", cwd=mlv_repo)
    ok(res)
    assert "core.jobs was not set" in res.stdout
    res = mlv("config", "--unset", "core.jobs", "4", cwd=mlv_repo)
    assert res.exit_code == 2


@pytest.mark.parametrize("args", [["foo.bar", "1"], ["foo.bar"], ["--unset", "foo.bar"],
                                  ["--global", "cache.typo", "copy"], ["cache", "copy"]])
def test_unknown_key(mlv_repo: Path, mlv, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    before = (mlv_repo / ".mlv" / "config").read_bytes()

    res = mlv("config", *args, cwd=mlv_repo)

    assert res.exit_code == 1
    assert "unknown config key" in res.stderr
    for key in ("cache.dir", "cache.type", "core.jobs"):
        assert key in res.stderr
    assert "Traceback" not in res.output
    assert (mlv_repo / ".mlv" / "config").read_bytes() == before
    assert not global_file().exists()


@pytest.mark.parametrize("key,value", [
    ("cache.type", "foo"), ("cache.type", "hardlink,foo"), ("cache.type", ","),
    ("cache.type", ""), ("core.jobs", "0"), ("core.jobs", "-2"), ("core.jobs", "many"),
    ("core.jobs", "2.5"), ("cache.dir", ""),
])
@pytest.mark.parametrize("level", ["repo", "local", "global"])
def test_bad_value_is_refused_and_nothing_written(mlv_repo: Path, mlv, key: str, value: str,
                                                 level: str) -> None:  # type: ignore[no-untyped-def]
    files = {"repo": mlv_repo / ".mlv" / "config", "local": mlv_repo / ".mlv" / "config.local",
             "global": global_file()}
    before = {name: p.read_bytes() if p.exists() else None for name, p in files.items()}
    flags = {"repo": [], "local": ["--local"], "global": ["--global"]}[level]

    res = mlv("config", *flags, key, "--", value, cwd=mlv_repo)

    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error: ")
    assert "Traceback" not in res.output
    assert {name: p.read_bytes() if p.exists() else None for name, p in files.items()} == before


@pytest.mark.parametrize("level", ["repo", "local", "global"])
def test_malformed_yaml_names_the_file(mlv_repo: Path, mlv, level: str) -> None:  # type: ignore[no-untyped-def]
    path = {"repo": mlv_repo / ".mlv" / "config", "local": mlv_repo / ".mlv" / "config.local",
            "global": global_file()}[level]
    make_tree(mlv_repo, {"data": {"a": b"a"}, "more": b"m"})
    ok(mlv("add", "data", cwd=mlv_repo))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("cache:\n  type: [copy\n")

    for args in (["status"], ["config", "cache.type"], ["add", "more"], ["checkout"]):
        res = mlv(*args, cwd=mlv_repo)
        assert res.exit_code == 1, (args, res.output)
        first = res.stderr.splitlines()[0]
        assert first.startswith("error: ") and str(path) in first, (args, res.stderr)
        assert "Traceback" not in res.output and "unexpected" not in res.output


@pytest.mark.parametrize("text", ["- a list\n", "cache: copy\n", "42\n"])
def test_config_of_the_wrong_shape_names_the_file(mlv_repo: Path, mlv, text: str) -> None:  # type: ignore[no-untyped-def]
    make_tree(mlv_repo, {"data": {"a": b"a"}})
    ok(mlv("add", "data", cwd=mlv_repo))
    (mlv_repo / ".mlv" / "config").write_text(text)
    res = mlv("status", cwd=mlv_repo)
    assert res.exit_code == 1
    assert str(mlv_repo / ".mlv" / "config") in res.stderr.splitlines()[0]
    assert "Traceback" not in res.output


def test_a_bad_value_written_by_hand_is_reported_when_used(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    make_tree(mlv_repo, {"data": {"a": b"a"}})
    (mlv_repo / ".mlv" / "config").write_text("cache:\n  type: teleport\n")
    res = mlv("add", "data", cwd=mlv_repo)
    assert res.exit_code == 1
    assert "cache.type" in res.stderr and "teleport" in res.stderr
    assert "Traceback" not in res.output and "unexpected" not in res.output
    assert not (mlv_repo / "data.mlv").exists()


def test_empty_config_file_is_fine(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (mlv_repo / ".mlv" / "config").write_text("")
    res = mlv("status", cwd=mlv_repo)
    ok(res)
    ok(mlv("config", "core.jobs", "2", cwd=mlv_repo))
    assert load(mlv_repo / ".mlv" / "config") == {"core": {"jobs": 2}}


@pytest.mark.parametrize("where", ["absolute", "relative", "home"])
def test_cache_dir_elsewhere_is_used_by_add_and_checkout(mlv_repo: Path, mlv, tmp_path: Path,
                                                        where: str) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "shared-cache"
    value = {"absolute": str(shared), "relative": "../shared-cache",
             "home": "~/shared-cache"}[where]
    if where == "home":
        shared = home() / "shared-cache"
    ok(mlv("config", "--local", "cache.dir", value, cwd=mlv_repo))
    make_tree(mlv_repo, {"data": {"a.txt": b"alpha", "sub": {"b.txt": b"beta"}},
                         "model.pkl": b"model"})

    ok(mlv("add", "data", "model.pkl", cwd=mlv_repo))

    assert cache_objects(mlv_repo) == {}
    assert not (mlv_repo / ".mlv" / "cache").exists()
    stored = {p.parent.name + p.name for p in (shared / "xxh128").glob("*/*")}
    assert {xxhash.xxh3_128_hexdigest(b) for b in (b"alpha", b"beta", b"model")} < stored
    assert len(stored) == 4

    shutil.rmtree(mlv_repo / "data")
    (mlv_repo / "model.pkl").unlink()
    ok(mlv("checkout", cwd=mlv_repo))
    assert read_tree(mlv_repo / "data") == {"a.txt": b"alpha", "sub/b.txt": b"beta"}
    assert (mlv_repo / "model.pkl").read_bytes() == b"model"
    st = mlv("status", cwd=mlv_repo)
    assert st.stdout == "everything is up to date\n", st.output


def test_cache_dir_shared_by_two_clones(tmp_path: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import git, run_mlv

    shared = tmp_path / "team-cache"
    first = tmp_path / "first"
    first.mkdir()
    git(first, "init", "-q", "-b", "main")
    ok(run_mlv(first, "init"))
    res = mlv("config", "cache.dir", str(shared), cwd=first)
    ok(res)
    # outside the repository: this clone's own setting, since no clone uses a committed one
    assert res.stdout == ("cache.dir is set in .mlv/config.local (this clone only): the "
                          "committed .mlv/config may only name a folder inside the repository\n")
    assert load(first / ".mlv" / "config.local") == {"cache": {"dir": str(shared)}}
    make_tree(first, {"data": {"x": b"shared bytes"}})
    ok(mlv("add", "data", cwd=first))
    git(first, "add", "-A")
    git(first, "commit", "-qm", "data")

    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", str(first), str(second))
    ok(mlv("config", "--local", "cache.dir", str(shared), cwd=second))
    res = mlv("checkout", cwd=second)
    ok(res)
    assert read_tree(second / "data") == {"x": b"shared bytes"}
