"""Pipelines, running them: staleness and its reasons, what `mlv repro` runs, output
caching and linking, the run-cache, parallel jobs, live output and Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from mlv import workspace
from tests.conftest import MLV, cache_objects, make_tree

PY = shlex.quote(sys.executable)


def ok(res):  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output
    return res


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "mlv.lock").read_text())


def lock_outs(repo: Path, stage: str) -> dict[str, str]:
    return {o["path"]: o["xxh128"] for o in lock(repo)["stages"][stage].get("outs", [])}


def ignored(repo: Path, path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=repo).returncode == 0


def runs(repo: Path, log: str = "runs.log") -> list[str]:
    path = repo / log
    return path.read_text().split() if path.exists() else []


def _reasons(text: str, lead: str) -> dict[str, str]:
    """{stage: reasons} from lines `<lead>NAME: REASONS`."""
    found = {}
    for line in text.splitlines():
        if line.startswith(lead):
            name, _, why = line[len(lead):].partition(": ")
            found[name] = why
    return found


def stale(mlv, repo: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """{stage: reasons} from `mlv status`."""
    return _reasons(mlv("status", cwd=repo).stdout, "stage ")


def would_run(mlv, repo: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """{stage: reasons} from `mlv repro --dry`."""
    return _reasons(ok(mlv("repro", "--dry", cwd=repo)).stdout, "would run ")


def logged(name: str, cmd: str) -> str:
    """`cmd`, plus a line in runs.log (outside every out) saying that `name` ran."""
    return f"echo {name} >> runs.log && {cmd}"


# ---- staleness reasons -----------------------------------------------------------------------

@pytest.fixture
def train_repo(mlv, mlv_repo: Path) -> Path:
    make_tree(mlv_repo, {"src": {"x.py": "print('v1')\n"},
                         "params.yaml": "train:\n  lr: 0.1\n  epochs: 3\n"})
    ok(mlv("stage", "add", "-n", "train", "-d", "src/x.py", "-p", "train.lr", "-o", "model.txt",
           "cat src/x.py > model.txt", cwd=mlv_repo))
    return mlv_repo


def test_new_stage_is_stale_until_it_runs(mlv, train_repo: Path) -> None:
    assert stale(mlv, train_repo) == {"train": "new stage"}
    assert would_run(mlv, train_repo) == {"train": "new stage"}
    assert mlv("status", "-q", cwd=train_repo).exit_code == 1
    res = ok(mlv("repro", cwd=train_repo))
    assert "train" in res.stdout
    assert (train_repo / "model.txt").read_text() == "print('v1')\n"
    assert stale(mlv, train_repo) == {}
    assert would_run(mlv, train_repo) == {}
    res = mlv("status", cwd=train_repo)
    assert res.exit_code == 0 and "everything is up to date" in res.stdout
    res = mlv("status", "-q", cwd=train_repo)
    assert res.exit_code == 0 and res.stdout == ""


def _edit_cmd(repo: Path) -> None:
    path = repo / "mlv.yaml"
    path.write_text(path.read_text().replace("cat src/x.py > model.txt",
                                             "cat src/x.py src/x.py > model.txt"))


def _edit_dep(repo: Path) -> None:
    (repo / "src" / "x.py").write_text("print('v2')\n")


def _edit_param(repo: Path) -> None:
    (repo / "params.yaml").write_text("train:\n  lr: 0.2\n  epochs: 3\n")


def _delete_out(repo: Path) -> None:
    (repo / "model.txt").unlink()


def _modify_out(repo: Path) -> None:
    (repo / "model.txt").unlink()
    (repo / "model.txt").write_text("edited by hand\n")


@pytest.mark.parametrize("change, reason", [
    (_edit_cmd, "cmd changed"),
    (_edit_dep, "dep src/x.py modified"),
    (_edit_param, "param train.lr: 0.1 -> 0.2"),
    (_delete_out, "out model.txt deleted"),
    (_modify_out, "out model.txt modified"),
])
def test_each_staleness_reason_is_reported(mlv, train_repo: Path, change, reason: str) -> None:
    ok(mlv("repro", cwd=train_repo))
    assert mlv("status", "-q", cwd=train_repo).exit_code == 0
    change(train_repo)
    assert stale(mlv, train_repo) == {"train": reason}
    assert would_run(mlv, train_repo) == {"train": reason}
    assert mlv("status", "-q", cwd=train_repo).exit_code == 1
    ok(mlv("repro", cwd=train_repo))
    assert stale(mlv, train_repo) == {}
    assert mlv("status", "-q", cwd=train_repo).exit_code == 0


def test_always_changed_stage_is_always_stale(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "fetch", "--always-changed", "-O", "now.txt",
           logged("fetch", "echo x > now.txt"), cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    assert stale(mlv, mlv_repo) == {"fetch": "always changed"}
    assert would_run(mlv, mlv_repo) == {"fetch": "always changed"}
    ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo) == ["fetch", "fetch"]


def test_a_param_change_reruns_only_stages_that_declare_it(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"params.yaml": "train:\n  lr: 0.1\n  epochs: 3\n"})
    ok(mlv("stage", "add", "-n", "a", "-p", "train.lr", "-o", "a.txt",
           logged("a", "echo a > a.txt"), cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "b", "-p", "train.epochs", "-o", "b.txt",
           logged("b", "echo b > b.txt"), cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    assert sorted(runs(mlv_repo)) == ["a", "b"]
    (mlv_repo / "params.yaml").write_text("train:\n  lr: 0.1\n  epochs: 4\n")
    assert stale(mlv, mlv_repo) == {"b": "param train.epochs: 3 -> 4"}
    ok(mlv("repro", cwd=mlv_repo))
    assert sorted(runs(mlv_repo)) == ["a", "b", "b"]
    assert stale(mlv, mlv_repo) == {}


def test_deps_may_be_files_folders_and_mlv_tracked_folders(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"conf.txt": "c1\n", "raw": {"a.csv": "1\n", "sub": {"b.csv": "2\n"}},
                         "images": {"1.png": "png1", "2.png": "png2"}})
    ok(mlv("add", "images", cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "count", "-d", "conf.txt", "-d", "raw", "-d", "images",
           "-O", "count.txt",
           logged("count", "find raw images -type f | sort > count.txt"), cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    deps = {d["path"]: d for d in lock(mlv_repo)["stages"]["count"]["deps"]}
    assert set(deps) == {"conf.txt", "raw", "images"}
    assert deps["raw"]["xxh128"].endswith(".dir") and deps["raw"]["nfiles"] == 2
    # the tracked folder's dep hash is the one in its pointer
    pointer = yaml.safe_load((mlv_repo / "images.mlv").read_text())
    assert deps["images"]["xxh128"] == pointer["outs"][0]["xxh128"]

    (mlv_repo / "raw" / "sub" / "c.csv").write_text("3\n")
    assert stale(mlv, mlv_repo) == {"count": "dep raw modified"}
    ok(mlv("repro", cwd=mlv_repo))
    assert "raw/sub/c.csv" in (mlv_repo / "count.txt").read_text()

    (mlv_repo / "images" / "3.png").write_text("png3")
    ok(mlv("add", "images", cwd=mlv_repo))
    assert stale(mlv, mlv_repo) == {"count": "dep images modified"}
    ok(mlv("repro", cwd=mlv_repo))
    assert "images/3.png" in (mlv_repo / "count.txt").read_text()

    (mlv_repo / "conf.txt").write_text("c2\n")
    assert stale(mlv, mlv_repo) == {"count": "dep conf.txt modified"}
    ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo) == ["count"] * 4


def test_noop_repro_runs_nothing_and_reads_no_file(mlv, mlv_repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(mlv_repo, {"params.yaml": "lr: 1\n", "src.txt": "s\n",
                         "raw": {f"f{i}.csv": f"{i}\n" for i in range(20)}})
    ok(mlv("stage", "add", "-n", "prepare", "-d", "raw", "-d", "src.txt", "-o", "prepared",
           logged("prepare", "mkdir prepared && cp raw/* prepared/"), cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "train", "-d", "prepared", "-p", "lr", "-o", "model.txt",
           "-M", "m.json", logged("train", "ls prepared > model.txt && echo {} > m.json"),
           cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    assert stale(mlv, mlv_repo) == {}  # a first status after the run

    def no_reading(path: str) -> tuple[str, int]:
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(workspace, "hash_file", no_reading)
    res = ok(mlv("repro", cwd=mlv_repo))
    assert "up to date" in res.stdout
    res = ok(mlv("status", cwd=mlv_repo))
    assert "everything is up to date" in res.stdout
    assert runs(mlv_repo) == ["prepare", "train"]


# ---- what repro runs -------------------------------------------------------------------------

@pytest.fixture
def chain(mlv, mlv_repo: Path) -> Path:
    """prepare -> train -> evaluate, each with its own source file, plus an unrelated stage."""
    make_tree(mlv_repo, {"src": {"prepare.sh": "p1", "train.sh": "t1", "evaluate.sh": "e1"}})
    ok(mlv("stage", "add", "-n", "prepare", "-d", "src/prepare.sh", "-o", "prepared.txt",
           logged("prepare", "cat src/prepare.sh > prepared.txt"), cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "train", "-d", "src/train.sh", "-d", "prepared.txt",
           "-o", "model.txt", logged("train", "cat prepared.txt src/train.sh > model.txt"),
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "evaluate", "-d", "src/evaluate.sh", "-d", "model.txt",
           "-M", "score.txt", logged("evaluate", "cat model.txt src/evaluate.sh > score.txt"),
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "other", "-o", "other.txt",
           logged("other", "echo o > other.txt"), cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    (mlv_repo / "runs.log").unlink()
    return mlv_repo


def test_repro_runs_everything_downstream_of_a_stale_stage(mlv, chain: Path) -> None:
    (chain / "src" / "prepare.sh").write_text("p2")
    plan = would_run(mlv, chain)
    assert list(plan) == ["prepare", "train", "evaluate"]
    assert plan["prepare"] == "dep src/prepare.sh modified"
    ok(mlv("repro", cwd=chain))
    assert runs(chain) == ["prepare", "train", "evaluate"]
    assert (chain / "score.txt").read_text() == "p2t1e1"
    assert stale(mlv, chain) == {}


def test_repro_target_runs_its_upstream_not_its_downstream(mlv, chain: Path) -> None:
    (chain / "src" / "prepare.sh").write_text("p2")
    ok(mlv("repro", "train", cwd=chain))
    assert runs(chain) == ["prepare", "train"]
    assert set(stale(mlv, chain)) == {"evaluate"}


def test_single_item_runs_only_the_named_stage(mlv, chain: Path) -> None:
    (chain / "src" / "prepare.sh").write_text("p2")
    (chain / "src" / "train.sh").write_text("t2")
    ok(mlv("repro", "-s", "train", cwd=chain))
    assert runs(chain) == ["train"]
    assert (chain / "model.txt").read_text() == "p1t2"
    assert set(stale(mlv, chain)) == {"prepare", "evaluate"}
    ok(mlv("repro", "--single-item", "prepare", cwd=chain))
    assert runs(chain) == ["train", "prepare"]


def test_downstream_runs_the_stage_and_what_follows_it(mlv, chain: Path) -> None:
    (chain / "src" / "prepare.sh").write_text("p2")
    (chain / "src" / "train.sh").write_text("t2")
    ok(mlv("repro", "--downstream", "train", cwd=chain))
    assert runs(chain) == ["train", "evaluate"]
    assert (chain / "score.txt").read_text() == "p1t2e1"
    assert set(stale(mlv, chain)) == {"prepare"}


def test_force_runs_up_to_date_stages(mlv, chain: Path) -> None:
    assert "up to date" in ok(mlv("repro", cwd=chain)).stdout
    assert runs(chain) == []
    ok(mlv("repro", "-f", cwd=chain))
    assert sorted(runs(chain)) == ["evaluate", "other", "prepare", "train"]
    (chain / "runs.log").unlink()
    ok(mlv("repro", "-f", "-s", "train", cwd=chain))
    assert runs(chain) == ["train"]


# ---- outputs ------------------------------------------------------------------------------------

def test_cached_outs_are_removed_before_the_stage_runs(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "make", "-o", "out.txt", "-o", "outdir",
           "test ! -e out.txt && test ! -e outdir && echo x > out.txt"
           " && mkdir outdir && echo y > outdir/f", cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    ok(mlv("repro", "-f", cwd=mlv_repo))
    assert (mlv_repo / "out.txt").read_text() == "x\n"
    assert (mlv_repo / "outdir" / "f").read_text() == "y\n"


def test_persist_outs_are_kept_for_the_next_run(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  grow:\n    cmd: echo line >> history.txt\n"
        "    outs:\n    - history.txt:\n        persist: true\n")
    ok(mlv("repro", cwd=mlv_repo))
    ok(mlv("repro", "-f", cwd=mlv_repo))
    assert (mlv_repo / "history.txt").read_text() == "line\nline\n"
    assert stale(mlv, mlv_repo) == {}


def test_persist_out_with_hardlinks_never_changes_a_cache_object(mlv, mlv_repo: Path) -> None:
    import xxhash

    ok(mlv("config", "cache.type", "hardlink", cwd=mlv_repo))
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  grow:\n    cmd: echo line >> history.txt\n"
        "    outs:\n    - history.txt:\n        persist: true\n")
    ok(mlv("repro", cwd=mlv_repo))
    ok(mlv("repro", "-f", cwd=mlv_repo))
    assert (mlv_repo / "history.txt").read_text() == "line\nline\n"
    for oid, path in cache_objects(mlv_repo).items():
        assert xxhash.xxh3_128_hexdigest(path.read_bytes()) == oid, f"cache object {oid} changed"


def test_outs_are_stored_in_the_cache_under_their_lock_hash(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "make", "-o", "model.bin", "-o", "features",
           "printf weights > model.bin && mkdir features && printf a > features/a"
           " && printf b > features/b", cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    outs = lock_outs(mlv_repo, "make")
    objects = cache_objects(mlv_repo)
    assert objects[outs["model.bin"]].read_bytes() == b"weights"
    assert outs["features"].endswith(".dir") and outs["features"] in objects
    manifest = {e["path"]: e["xxh128"] for e in
                json.loads(objects[outs["features"]].read_bytes())}
    assert set(manifest) == {"a", "b"}
    assert objects[manifest["a"]].read_bytes() == b"a"
    assert objects[manifest["b"]].read_bytes() == b"b"
    assert ignored(mlv_repo, "model.bin") and ignored(mlv_repo, "features")


def test_hardlink_cache_type_links_outs_to_the_cache(mlv, mlv_repo: Path) -> None:
    ok(mlv("config", "cache.type", "hardlink", cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "make", "-o", "model.bin", "printf weights > model.bin",
           cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    oid = lock_outs(mlv_repo, "make")["model.bin"]
    obj = cache_objects(mlv_repo)[oid]
    assert os.stat(mlv_repo / "model.bin").st_ino == os.stat(obj).st_ino
    assert stale(mlv, mlv_repo) == {}


def test_uncached_outs_are_hashed_in_the_lock_but_not_ignored(mlv, mlv_repo: Path) -> None:
    import xxhash

    ok(mlv("stage", "add", "-n", "report", "-O", "report.txt", "-M", "m.json",
           "echo fine > report.txt && echo '{\"a\": 1}' > m.json", cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    outs = lock_outs(mlv_repo, "report")
    assert outs["report.txt"] == xxhash.xxh3_128_hexdigest(b"fine\n")
    assert "m.json" in outs
    assert not ignored(mlv_repo, "report.txt") and not ignored(mlv_repo, "m.json")
    (mlv_repo / "report.txt").write_text("changed\n")
    assert stale(mlv, mlv_repo) == {"report": "out report.txt modified"}


# ---- run-cache ----------------------------------------------------------------------------------

@pytest.fixture
def lr_repo(mlv, mlv_repo: Path) -> Path:
    make_tree(mlv_repo, {"params.yaml": "lr: 0.1\n"})
    ok(mlv("stage", "add", "-n", "train", "-p", "lr", "-o", "model.txt",
           logged("train", "cat params.yaml > model.txt"), cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    (mlv_repo / "params.yaml").write_text("lr: 0.2\n")
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "model.txt").read_text() == "lr: 0.2\n"
    (mlv_repo / "params.yaml").write_text("lr: 0.1\n")
    return mlv_repo


def test_run_cache_restores_outputs_without_running(mlv, lr_repo: Path) -> None:
    res = ok(mlv("repro", cwd=lr_repo))
    assert "restored" in res.stdout and "run-cache" in res.stdout
    assert runs(lr_repo) == ["train", "train"]
    assert (lr_repo / "model.txt").read_text() == "lr: 0.1\n"
    assert lock(lr_repo)["stages"]["train"]["params"] == {"params.yaml": {"lr": 0.1}}
    assert stale(mlv, lr_repo) == {}


def test_no_run_cache_always_runs(mlv, lr_repo: Path) -> None:
    res = ok(mlv("repro", "--no-run-cache", cwd=lr_repo))
    assert "restored" not in res.stdout
    assert runs(lr_repo) == ["train", "train", "train"]
    assert (lr_repo / "model.txt").read_text() == "lr: 0.1\n"
    assert stale(mlv, lr_repo) == {}


# ---- parallel jobs and output -----------------------------------------------------------------

@pytest.fixture
def two_sleepers(mlv, mlv_repo: Path) -> Path:
    for name in ("left", "right"):
        ok(mlv("stage", "add", "-n", name, "-o", f"{name}.txt",
               f"echo hello-{name} && sleep 1.5 && echo {name} > {name}.txt", cwd=mlv_repo))
    return mlv_repo


@pytest.mark.slow
def test_independent_stages_run_in_parallel_with_jobs(mlv, two_sleepers: Path) -> None:
    start = time.monotonic()
    res = ok(mlv("repro", "-j", "2", cwd=two_sleepers))
    parallel = time.monotonic() - start
    lines = res.stdout.splitlines()
    assert "[left] hello-left" in lines and "[right] hello-right" in lines
    assert (two_sleepers / "left.txt").exists() and (two_sleepers / "right.txt").exists()
    assert parallel < 2.6, f"-j 2 took {parallel:.2f}s"

    start = time.monotonic()
    res = ok(mlv("repro", "-f", "-j", "1", cwd=two_sleepers))
    serial = time.monotonic() - start
    assert serial >= 3.0, f"-j 1 took {serial:.2f}s"
    lines = res.stdout.splitlines()
    assert "hello-left" in lines and "hello-right" in lines


def _reader(stream, lines: queue.Queue) -> None:  # type: ignore[no-untyped-def]
    for line in iter(stream.readline, ""):
        lines.put((time.monotonic(), line.rstrip("\n")))
    lines.put((time.monotonic(), None))


def test_stage_output_is_streamed_live(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "talk", "-O", "done.txt",
           "echo first-line && sleep 2 && echo second-line && echo ok > done.txt",
           cwd=mlv_repo))
    proc = subprocess.Popen(MLV + ["repro"], cwd=mlv_repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            when, line = lines.get(timeout=30)
            if line is None:
                break
            seen.setdefault(line, when)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "first-line" in seen and "second-line" in seen
    # the first line arrived while the stage was still sleeping, not at the end
    assert seen["second-line"] - seen["first-line"] > 1.3


def _running_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies waiting for the
    init process to reap them count as stopped)."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


@pytest.mark.parametrize("stage_ignores_sigterm",
                         [False, pytest.param(True, marks=pytest.mark.slow)])
def test_ctrl_c_stops_the_stage_and_keeps_the_lock(mlv, mlv_repo: Path,
                                                    stage_ignores_sigterm: bool) -> None:
    # A stage that ignores SIGTERM (as `trap '' TERM` makes its children do too) is
    # killed after mlv's grace period.
    trap = "trap '' TERM; " if stage_ignores_sigterm else ""
    ok(mlv("stage", "add", "-n", "quick", "-o", "quick.txt", "echo q > quick.txt",
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "slow", "-d", "quick.txt", "-o", "slow.txt",
           trap + "echo $$ > slow.pid && echo sleeping && sleep 30 && echo s > slow.txt",
           cwd=mlv_repo))
    # As from a terminal: SIGINT at its default even when this test runs in the
    # background (a non-interactive shell starts background jobs with SIGINT ignored).
    proc = subprocess.Popen(MLV + ["repro"], cwd=mlv_repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                             signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, line = lines.get(timeout=30)
            assert line is not None, "mlv repro ended before the slow stage started"
            if line == "sleeping":
                break
        time.sleep(1)
        pgid = int((mlv_repo / "slow.pid").read_text())
        os.killpg(pgid, 0)  # the stage is running
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        code = proc.wait(timeout=10)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code != 0
    assert took < 5, f"mlv took {took:.1f}s to stop"
    deadline = time.monotonic() + 5
    while _running_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _running_in_group(pgid)
    if left:
        os.killpg(pgid, signal.SIGKILL)
    assert not left, f"the stage's processes {left} still run after mlv stopped"
    assert not (mlv_repo / "slow.txt").exists()
    data = lock(mlv_repo)
    assert set(data["stages"]) == {"quick"}
    assert stale(mlv, mlv_repo) == {"slow": "new stage"}
