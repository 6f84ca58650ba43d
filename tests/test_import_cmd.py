"""`mlv import`, `mlv update` and `mlv status --imports`, end to end: sources are
repositories with bare origins cloned by file:// URL, their data on folder remotes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import Result, add_remote, commit_all, git, make_tree, one_error, run_mlv

Mlv = Callable[..., Result]


class Src:
    """A source repository (work tree `repo`, bare origin `origin`) and its URL."""

    def __init__(self, repo: Path, origin: Path) -> None:
        self.repo = repo
        self.origin = origin
        self.url = f"file://{origin}"

    def publish(self, mlv: Mlv, message: str) -> str:
        """Commit, push the data to the source's remote and the commit to its origin."""
        commit_all(self.repo, message)
        assert mlv("push", cwd=self.repo).exit_code == 0
        git(self.repo, "push", "-q", "origin", "HEAD:main", "--tags")
        return git(self.repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def src(mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Src:
    """data/{a.txt,sub/b.txt} and model.bin tracked by mlv (tag v1), README by git."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    make_tree(mlv_repo, {"README": "hello\n", "model.bin": b"\0" * 2048,
                         "data": {"a.txt": "a\n", "sub": {"b.txt": "bb\n"}}})
    add_remote(mlv_repo, "local", request, tmp_path, name="srcstore")
    assert mlv("add", "data", "model.bin", cwd=mlv_repo).exit_code == 0
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(mlv_repo, "remote", "add", "origin", str(origin))
    found = Src(mlv_repo, origin)
    found.publish(mlv, "v1")
    git(mlv_repo, "tag", "v1")
    git(mlv_repo, "push", "-q", "origin", "v1")
    return found


@pytest.fixture
def project(mlv_template: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The repository that imports, with a folder remote of its own."""
    here = tmp_path / "project"
    shutil.copytree(mlv_template, here, symlinks=True)
    add_remote(here, "local", request, tmp_path, name="mine")
    commit_all(here, "remote")
    return here


def ok(res: Result) -> str:
    assert res.exit_code == 0, res.output
    return res.stdout


def read_pointer(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def files_under(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# ---- import ---------------------------------------------------------------------------

def test_import_a_folder_records_its_source(src: Src, project: Path, mlv: Mlv) -> None:
    shown = ok(mlv("import", src.url, "data", cwd=project))
    commit = git(src.repo, "rev-parse", "HEAD").strip()
    assert "imported data (2 files, 5 B)" in shown and commit[:8] in shown
    assert files_under(project / "data") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}
    text = (project / "data.mlv").read_text()
    source_oid = read_pointer(src.repo / "data.mlv")["outs"][0]["xxh128"]
    assert text == (
        "# mlv pointer: `mlv checkout` restores this path from the cache\n"
        "outs:\n- path: data\n"
        f"  xxh128: {source_oid}\n  size: 5\n  nfiles: 2\n"
        f"source:\n  url: {src.url}\n  path: data\n  commit: {commit}\n")
    assert "/data" in (project / ".gitignore").read_text().splitlines()
    assert ok(mlv("status", cwd=project)).strip() == "everything is up to date"
    assert git(project, "status", "--porcelain", "--", "data") == ""
    # the bytes are in this project's cache: the workspace copy can go and come back
    shutil.rmtree(project / "data")
    ok(mlv("checkout", cwd=project))
    assert files_under(project / "data") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}


def test_import_a_file_a_git_file_and_a_member_at_a_rev(src: Src, project: Path,
                                                       mlv: Mlv) -> None:
    make_tree(src.repo, {"data": {"a.txt": "A2\n"}})
    ok(mlv("add", "data", cwd=src.repo))
    src.publish(mlv, "v2")
    v1 = git(src.repo, "rev-parse", "v1").strip()
    (project / "in").mkdir()
    ok(mlv("import", src.url, "model.bin", "--rev", "v1", cwd=project / "in"))
    assert (project / "in" / "model.bin").read_bytes() == b"\0" * 2048
    assert read_pointer(project / "in" / "model.bin.mlv")["source"] == {
        "url": src.url, "path": "model.bin", "rev": "v1", "commit": v1}
    ok(mlv("import", src.url, "README", "-o", "docs/readme.txt", cwd=project))
    assert (project / "docs" / "readme.txt").read_text() == "hello\n"
    assert read_pointer(project / "docs" / "readme.txt.mlv")["outs"][0]["size"] == 6
    ok(mlv("import", src.url, "data/a.txt", "--rev", "v1", "-o", "old-a.txt", cwd=project))
    assert (project / "old-a.txt").read_text() == "a\n"
    ok(mlv("import", src.url, "data/sub", cwd=project))  # a folder inside a tracked one
    assert files_under(project / "sub") == {"b.txt": "bb\n"}
    assert ok(mlv("status", cwd=project)).strip() == "everything is up to date"


def test_import_a_folder_of_git_files_and_tracked_data(src: Src, project: Path,
                                                       mlv: Mlv) -> None:
    make_tree(src.repo, {"kit": {"notes.md": "# notes\n", "run.sh": "echo hi\n",
                                 "weights": {"w.bin": b"\1" * 100}}})
    (src.repo / "kit" / "run.sh").chmod(0o755)
    ok(mlv("add", "kit/weights", cwd=src.repo))
    src.publish(mlv, "kit")
    ok(mlv("import", src.url, "kit", cwd=project))
    assert files_under(project / "kit") == {"notes.md": "# notes\n", "run.sh": "echo hi\n",
                                            ".gitignore": "/weights\n",
                                            "weights/w.bin": "\1" * 100}
    assert os.access(project / "kit" / "run.sh", os.X_OK)
    assert read_pointer(project / "kit.mlv")["outs"][0]["nfiles"] == 4  # no weights.mlv
    assert ok(mlv("status", cwd=project)).strip() == "everything is up to date"


def test_import_from_a_local_work_tree_records_its_absolute_path(src: Src, project: Path,
                                                                  mlv: Mlv) -> None:
    rel = os.path.relpath(src.repo, project)
    ok(mlv("import", rel, "data", "-o", "d", cwd=project))
    assert read_pointer(project / "d.mlv")["source"]["url"] == str(src.repo)
    assert files_under(project / "d") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}


def test_push_and_a_clone_pulls_without_the_source(src: Src, project: Path, mlv: Mlv,
                                                   tmp_path: Path) -> None:
    ok(mlv("import", src.url, "data", cwd=project))
    commit_all(project, "import data")
    ok(mlv("push", cwd=project))
    # the source is gone: its origin, its remote, its work tree and the clone cache
    src.origin.rename(tmp_path / "gone.git")
    shutil.rmtree(tmp_path / "remote-srcstore")
    shutil.rmtree(src.repo)
    shutil.rmtree(tmp_path / "xdg-cache")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    res = run_mlv(clone, "pull")
    assert res.exit_code == 0, res.output
    assert files_under(clone / "data") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}
    assert ok(mlv("status", cwd=clone)).strip() == "everything is up to date"


def test_existing_commands_work_on_an_import(src: Src, project: Path, mlv: Mlv) -> None:
    ok(mlv("import", src.url, "data", cwd=project))
    commit_all(project, "import data")
    ok(mlv("gc", "--workspace", "-f", cwd=project))
    shutil.rmtree(project / "data")
    assert "deleted" in ok(mlv("status", cwd=project))
    ok(mlv("checkout", cwd=project))  # gc kept the objects the import's pointer names
    assert files_under(project / "data") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}
    (project / "data" / "a.txt").chmod(0o644)
    (project / "data" / "a.txt").write_text("changed\n")
    assert "modified" in ok(mlv("status", cwd=project))
    ok(mlv("checkout", "--force", "data", cwd=project))
    ok(mlv("add", "data", cwd=project))  # unchanged: still an import
    assert read_pointer(project / "data.mlv")["source"]["path"] == "data"
    ok(mlv("move", "data", "imported", cwd=project))
    assert read_pointer(project / "imported.mlv")["source"]["path"] == "data"
    commit_all(project, "move")
    assert "imported" in ok(mlv("diff", "HEAD~1", cwd=project))


# ---- errors -----------------------------------------------------------------------------

def assert_nothing_written(project: Path, *names: str, left: str = "") -> None:
    for name in names:
        assert not (project / name).exists()
        assert not (project / f"{name}.mlv").exists()
    assert git(project, "status", "--porcelain", "--ignored", "--", ".", ":!.mlv") == left


def test_import_errors_write_nothing(src: Src, project: Path, mlv: Mlv,
                                     tmp_path: Path) -> None:
    one_error(mlv("import", src.url, "data", "--rev", "nope", cwd=project),
              "unknown revision", "nope")
    one_error(mlv("import", src.url, "missing", cwd=project), "missing", "is not in")
    one_error(mlv("import", f"file://{tmp_path}/nowhere.git", "data", cwd=project),
              "cannot clone", "nowhere.git")
    one_error(mlv("import", src.url, "", cwd=project), "cannot import")
    assert_nothing_written(project, "data", "missing")
    # the source's remote lacks the objects: never pushed
    make_tree(src.repo, {"data": {"new.txt": "not pushed\n"}, "model.bin": "new\n"})
    ok(mlv("add", "data", "model.bin", cwd=src.repo))
    commit_all(src.repo, "unpushed")
    git(src.repo, "push", "-q", "origin", "HEAD:main")
    one_error(mlv("import", src.url, "data", cwd=project), "file list of data",
              "neither the cache nor remote 'srcstore'")
    one_error(mlv("import", src.url, "model.bin", cwd=project), "model.bin",
              "not on remote 'srcstore'", "nothing was imported")
    assert_nothing_written(project, "data", "model.bin")
    # the destination
    ok(mlv("import", src.url, "model.bin", "--rev", "v1", cwd=project))
    commit_all(project, "import model")
    one_error(mlv("import", src.url, "model.bin", "--rev", "v1", cwd=project),
              "model.bin is already tracked")
    (project / "model.bin.mlv").unlink()
    one_error(mlv("import", src.url, "model.bin", "--rev", "v1", cwd=project),
              "model.bin already exists")
    git(project, "checkout", "--", "model.bin.mlv")
    one_error(mlv("import", src.url, "data", "-o", "../outside", "--rev", "v1", cwd=project),
              "outside")
    one_error(mlv("import", "https://u:s3cret@127.0.0.1:1/x.git", "data", cwd=project),
              "u:***@127.0.0.1", "password")
    assert_nothing_written(project, "data", "outside", left="!! model.bin\n")


def test_a_failed_checkout_takes_the_pointer_back(src: Src, project: Path, mlv: Mlv,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.api import checkout as checkout_mod

    def broken(*args: object, **kwargs: object) -> None:
        from mlv import fsio

        raise fsio.storage_error(OSError(28, "No space left on device"), "data/a.txt")

    monkeypatch.setattr(checkout_mod, "_write_all", broken)
    one_error(mlv("import", src.url, "data", cwd=project), "no space left")
    one_error(mlv("import", src.url, "data", "-o", "new/deep/data", cwd=project),
              "no space left")
    assert_nothing_written(project, "data", "new")


# ---- update -----------------------------------------------------------------------------

def test_update_follows_the_branch_and_reports_what_changed(src: Src, project: Path,
                                                            mlv: Mlv) -> None:
    ok(mlv("import", src.url, "data", "--rev", "main", cwd=project))
    ok(mlv("import", src.url, "model.bin", cwd=project))
    (project / "mlv.yaml").write_text(
        "stages:\n  count:\n    cmd: find data -type f | wc -l > n.txt\n"
        "    deps: [data]\n    outs: [n.txt]\n")
    ok(mlv("repro", cwd=project))
    commit_all(project, "import and count")
    shown = ok(mlv("update", cwd=project))
    assert "data (data.mlv): up to date" in shown and "model.bin (model.bin.mlv): up to date" \
        in shown
    before = (project / "data.mlv").read_text()
    make_tree(src.repo, {"data": {"c.txt": "ccc\n", "a.txt": "A2\n"}, "model.bin": b"1" * 10})
    (src.repo / "data" / "sub" / "b.txt").unlink()
    ok(mlv("add", "data", "model.bin", cwd=src.repo))
    new = src.publish(mlv, "v2")
    assert ok(mlv("status", cwd=project)).strip() == "everything is up to date"  # no network
    shown = ok(mlv("update", "data", cwd=project))
    assert "data (data.mlv): updated to" in shown and new[:8] in shown
    assert "1 file added, 1 modified, 1 deleted" in shown
    assert "added:    c.txt" in shown and "deleted:  sub/b.txt" in shown
    assert files_under(project / "data") == {"a.txt": "A2\n", "c.txt": "ccc\n"}
    ptr = read_pointer(project / "data.mlv")
    assert ptr["source"] == {"url": src.url, "path": "data", "rev": "main", "commit": new}
    assert (project / "data.mlv").read_text() != before
    assert "stage count" in ok(mlv("status", cwd=project))  # the stage's dep changed
    shown = ok(mlv("update", "model.bin.mlv", cwd=project))
    assert "size 2.0 KiB -> 10 B" in shown
    assert (project / "model.bin").read_bytes() == b"1" * 10
    assert "up to date" in ok(mlv("update", "data", cwd=project))
    shown = ok(mlv("update", "data", "--rev", "v1", cwd=project))
    assert "1 file added, 1 modified, 1 deleted" in shown
    assert read_pointer(project / "data.mlv")["source"]["rev"] == "v1"
    assert files_under(project / "data") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}


def test_update_errors(src: Src, project: Path, mlv: Mlv) -> None:
    ok(mlv("import", src.url, "data", cwd=project))
    make_tree(project, {"own": "mine\n"})
    ok(mlv("add", "own", cwd=project))
    one_error(mlv("update", "own", cwd=project), "own.mlv is not an import")
    one_error(mlv("update", "nothing", cwd=project), "not tracked")
    before = (project / "data.mlv").read_text()
    one_error(mlv("update", "data", "--rev", "nope", cwd=project), "unknown revision")
    make_tree(src.repo, {"data": {"c.txt": "ccc\n"}})
    ok(mlv("add", "data", cwd=src.repo))
    src.publish(mlv, "v2")
    (project / "data" / "a.txt").chmod(0o644)
    (project / "data" / "a.txt").write_text("my own edit\n")
    one_error(mlv("update", "data", cwd=project), "would overwrite", "data/a.txt")
    assert (project / "data.mlv").read_text() == before
    assert (project / "data" / "a.txt").read_text() == "my own edit\n"
    git(src.repo, "rm", "-q", "data.mlv")
    src.publish(mlv, "drop data")
    one_error(mlv("update", "data", cwd=project), "data", "is not in")
    assert (project / "data.mlv").read_text() == before


def test_adding_changed_data_makes_an_import_your_own(src: Src, project: Path,
                                                      mlv: Mlv) -> None:
    ok(mlv("import", src.url, "data", cwd=project))
    (project / "data" / "new.txt").write_text("mine\n")
    ok(mlv("add", "data", cwd=project))
    assert "source" not in read_pointer(project / "data.mlv")
    one_error(mlv("update", "data", cwd=project), "data.mlv is not an import")


def test_update_with_nothing_imported(project: Path, mlv: Mlv) -> None:
    assert "nothing is imported" in ok(mlv("update", cwd=project))


# ---- status --imports -------------------------------------------------------------------

def test_status_imports_marks_what_is_behind(src: Src, project: Path, mlv: Mlv,
                                             tmp_path: Path) -> None:
    ok(mlv("import", src.url, "data", cwd=project))
    ok(mlv("import", src.url, "model.bin", "--rev", "v1", cwd=project))
    assert ok(mlv("status", "--imports", cwd=project)).strip() == "everything is up to date"
    make_tree(src.repo, {"data": {"c.txt": "ccc\n"}})
    ok(mlv("add", "data", cwd=src.repo))
    new = src.publish(mlv, "v2")
    shown = ok(mlv("status", "--imports", cwd=project))
    assert shown.startswith("data (data.mlv): import is behind: HEAD is now at " + new[:8])
    assert "model.bin" not in shown  # v1 has not moved
    assert mlv("status", "--imports", "-q", cwd=project).exit_code == 1
    import json

    found = json.loads(ok(mlv("status", "--imports", "--json", cwd=project)))
    assert found["imports"]["data"]["current"] == new
    # the source is gone: plain status never asks it, --imports says so
    src.origin.rename(tmp_path / "gone.git")
    assert ok(mlv("status", cwd=project)).strip() == "everything is up to date"
    res = run_mlv(project, "status")
    assert res.exit_code == 0 and res.stdout.strip() == "everything is up to date", res.output
    shown = ok(mlv("status", "--imports", cwd=project))
    assert "data (data.mlv): cannot check the import: cannot fetch" in shown


def test_status_never_touches_the_network_without_imports(project: Path, mlv: Mlv,
                                                          tmp_path: Path) -> None:
    make_tree(project, {"data": {"a.txt": "a\n"}})
    ok(mlv("add", "data", cwd=project))
    text = (project / "data.mlv").read_text()
    (project / "data.mlv").write_text(
        text + f"source:\n  url: file://{tmp_path}/never/there.git\n  path: data\n"
        f"  commit: {'ab' * 20}\n")
    assert ok(mlv("status", cwd=project)).strip() == "everything is up to date"
    assert not (tmp_path / "xdg-cache").exists() or not any((tmp_path / "xdg-cache").rglob("*"))
    shown = ok(mlv("status", "--imports", cwd=project))
    assert "cannot check the import: cannot clone" in shown


# ---- untrusted pointers -----------------------------------------------------------------

@pytest.mark.parametrize("field,value,words", [
    ("url", "--upload-pack=touch {marker}", ["source.url", "must not start with `-`"]),
    ("url", "ext::sh -c touch% {marker}", ["source.url", "runs a command"]),
    ("url", "EXT::sh -c touch% {marker}", ["source.url", "runs a command"]),
    ("path", "../../x", ["source.path"]),
    ("path", "/etc/passwd", ["source.path"]),
    ("commit", "HEAD; touch {marker}", ["source.commit", "40 lower-case hex"]),
    ("rev", "--output={marker}", ["source.rev", "must not start with `-`"]),
    ("extra", "x", ["source.extra", "unknown field"]),
])
def test_a_clones_malicious_source_is_refused(src: Src, project: Path, mlv: Mlv,
                                              tmp_path: Path, field: str, value: str,
                                              words: list[str]) -> None:
    marker = tmp_path / "marker"
    ok(mlv("import", src.url, "data", cwd=project))
    ptr = read_pointer(project / "data.mlv")
    ptr["source"][field] = value.format(marker=marker)
    (project / "data.mlv").write_text(yaml.safe_dump(ptr, sort_keys=False))
    for args in (("update",), ("update", "data"), ("status", "--imports"), ("status",)):
        one_error(mlv(*args, cwd=project), "data.mlv", *words)
    assert not marker.exists()
    assert not (tmp_path / "x").exists()


def test_git_never_runs_an_ext_url_even_if_the_user_allows_it(project: Path, mlv: Mlv,
                                                              tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    git(project, "config", "--global", "protocol.ext.allow", "always")
    res = mlv("import", f"ext::sh -c touch% {marker}", "data", cwd=project)
    one_error(res, "cannot clone")
    assert not marker.exists()


def test_an_import_pointer_lists_one_out(project: Path, mlv: Mlv) -> None:
    make_tree(project, {"a": "a\n", "b": "b\n"})
    ok(mlv("add", "a", "b", cwd=project))
    a, b = read_pointer(project / "a.mlv"), read_pointer(project / "b.mlv")
    a["outs"] += b["outs"]
    a["source"] = {"url": "x", "path": "a", "commit": "a" * 40}
    (project / "b.mlv").unlink()
    (project / "a.mlv").write_text(yaml.safe_dump(a, sort_keys=False))
    one_error(mlv("status", cwd=project), "a.mlv", "exactly one entry")


# ---- a subprocess, and S3 ---------------------------------------------------------------

def test_import_in_a_subprocess(src: Src, project: Path) -> None:
    res = run_mlv(project, "import", src.url, "data", "-o", "raw")
    assert res.exit_code == 0, res.output
    assert files_under(project / "raw") == {"a.txt": "a\n", "sub/b.txt": "bb\n"}
    res = run_mlv(project, "import", src.url, "data", "-o", "raw")
    one_error(res, "raw is already tracked")


@pytest.mark.slow
def test_import_from_a_source_on_s3(mlv_repo: Path, project: Path, mlv: Mlv, tmp_path: Path,
                                    request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    make_tree(mlv_repo, {"data": {"a.txt": "a\n", "big.bin": os.urandom(5 << 20)}})
    add_remote(mlv_repo, "s3", request, tmp_path, name="s3store")
    ok(mlv("add", "data", cwd=mlv_repo))
    commit_all(mlv_repo, "data")
    ok(mlv("push", cwd=mlv_repo))
    origin = tmp_path / "s3origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(mlv_repo), str(origin))
    ok(mlv("import", f"file://{origin}", "data", cwd=project))
    assert (project / "data" / "big.bin").read_bytes() == (mlv_repo / "data" /
                                                             "big.bin").read_bytes()
    ok(mlv("push", cwd=project))
