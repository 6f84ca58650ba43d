"""Running stages: plan what is stale, run it in dependency order (in parallel where
the graph allows), cache the outputs and record them in `mlv.lock`."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from mlv import fsio
from mlv.checkout import materialize, wants_links
from mlv.errors import MlvError
from mlv.manifest import Entry
from mlv.pipeline import lockfile, runcache
from mlv.pipeline.lockfile import Hashed
from mlv.pipeline.stage import PipelineError, Stage
from mlv.pipeline.status import Pipeline
from mlv.snapshot import snapshot

KILL_AFTER = 2.0  # seconds a stage gets to stop (Ctrl-C, SIGTERM, SIGHUP) before it is killed
# A closed terminal or a cancelled CI job stops the stages the way Ctrl-C does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

Emit = Callable[[str], None]


@dataclass
class Plan:
    order: list[str]  # stages to run, in order
    reasons: dict[str, list[str]]


@dataclass
class ReproResult:
    ran: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # from the run-cache
    failed: dict[str, str] = field(default_factory=dict)  # stage -> why
    skipped: list[str] = field(default_factory=list)  # downstream of a failure
    stopped: list[str] = field(default_factory=list)  # not started: a failure ended the run


class StageFailed(Exception):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while stages ran; they were stopped as for Ctrl-C.
    `signum` is the signal (the CLI exits with 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def select(pipe: Pipeline, targets: list[str], single: bool, downstream: bool) -> list[str]:
    """The stages a command is about, in dependency order."""
    dag = pipe.dag
    if not targets:
        return list(dag.order)
    names: set[str] = set()
    for target in targets:
        matched = [n for n in dag.stages if n == target or n.startswith(target + "@")]
        if not matched:
            raise PipelineError(f"no stage named {target!r} in mlv.yaml",
                                hint="see `mlv stage list`")
        names.update(matched)
    if not single:
        names = dag.closure(names, dag.downstream if downstream else dag.upstream)
    return [n for n in dag.order if n in names]


def plan(pipe: Pipeline, selected: list[str], force: bool, forced: set[str],
         deps_present: bool = True) -> Plan:
    """Stale stages among `selected`, and everything downstream of them. With
    `deps_present`, every dep must exist or be produced by a stage."""
    reasons: dict[str, list[str]] = {}
    chosen = set(selected)
    for name in selected:
        stage = pipe.dag.stages[name]
        if stage.frozen:  # never run, even with --force
            continue
        why = pipe.reasons(stage)
        if force and (not forced or name in forced):
            why = why or ["forced"]
        ups = [u for u in pipe.dag.upstream[name] if u in reasons and u in chosen]
        if ups and not why:
            why = [f"upstream stage {sorted(ups)[0]} will run"]
        if why:
            reasons[name] = why
    if deps_present:
        check_deps(pipe, selected)
    return Plan([n for n in selected if n in reasons], reasons)


def check_deps(pipe: Pipeline, selected: list[str]) -> None:
    for name in selected:
        if pipe.dag.stages[name].frozen:
            continue
        for dep in pipe.dag.stages[name].deps:
            if not os.path.exists(pipe.abspath(dep)) and pipe.dag.producer_of(dep) is None:
                raise PipelineError(f"stage {name}: dep {dep} does not exist and no stage "
                                    "produces it", hint=f"create {dep}, or fix the stage's deps")


class Runner:
    def __init__(self, pipe: Pipeline, link_types: list[str], link_skip: set[str],
                 emit: Emit, jobs: int, keep_going: bool, use_run_cache: bool,
                 runs_dir: str, fetch: Callable[[set[str]], None] | None = None) -> None:
        """`fetch`, when given, is called with a run-cache hit's objects before they are
        restored, to download those the cache lacks."""
        self.pipe = pipe
        self.link_types = link_types
        self.link_skip = link_skip
        self.emit = emit
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.use_run_cache = use_run_cache
        self.runs_dir = runs_dir
        self.fetch = fetch
        self.write_lock = threading.Lock()
        self.procs: set[subprocess.Popen[bytes]] = set()
        self.procs_lock = threading.Lock()  # starting a stage vs. stopping them all
        self.stopping = threading.Event()  # set once: no stage starts or is recorded after

    def run(self, the_plan: Plan) -> ReproResult:
        with _stop_on_signals(self.stopping):
            return self._run(the_plan)

    def _run(self, the_plan: Plan) -> ReproResult:
        result = ReproResult()
        todo = list(the_plan.order)
        upstream = {n: {u for u in self.pipe.dag.upstream[n] if u in todo} for n in todo}
        done: set[str] = set()
        running: dict[Future[str], str] = {}
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            while todo or running:
                stop = bool(result.failed) and not self.keep_going
                for name in list(todo):
                    if stop:
                        break
                    if len(running) >= self.jobs:
                        break
                    if upstream[name] & set(result.failed) | upstream[name] & set(
                            result.skipped):
                        todo.remove(name)
                        result.skipped.append(name)
                        continue
                    if upstream[name] <= done:
                        todo.remove(name)
                        running[pool.submit(self.run_stage, self.pipe.dag.stages[name],
                                            the_plan.reasons[name])] = name
                if not running:
                    result.stopped += todo
                    break
                # A timeout, so the main thread wakes up to handle Ctrl-C even when the
                # signal was delivered to one of the output-reading threads.
                finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        how = future.result()
                    except StageFailed as exc:
                        result.failed[name] = str(exc)
                        continue
                    done.add(name)
                    if how == "restored":
                        result.restored.append(name)
                    elif how == "ran":
                        result.ran.append(name)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP (Terminated)
            self.stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return result

    def stop_all(self) -> None:
        """Ask every running stage to stop (SIGTERM to its process group); kill the
        groups still running KILL_AFTER seconds later (a stage that ignores SIGTERM, or a
        child left behind by a shell that did stop), so no stage outlives mlv. Stages
        stopped here are not recorded, and no stage starts after this."""
        with self.procs_lock:
            self.stopping.set()
            groups = [proc.pid for proc in self.procs]
        _signal_groups(groups, signal.SIGTERM)
        deadline = time.monotonic() + KILL_AFTER
        while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
            time.sleep(0.05)
        _signal_groups(groups, signal.SIGKILL)

    # ---- one stage ------------------------------------------------------------------------

    def run_stage(self, stage: Stage, reasons: list[str]) -> str:
        pipe = self.pipe
        if all(r.startswith("upstream stage ") for r in reasons):
            # Its upstream stages have run now: if they produced the same bytes, and
            # nothing else changed, this stage is up to date.
            for dep in stage.deps:
                pipe.forget(dep)
            if not pipe.reasons(stage):
                self.emit(f"stage {stage.name} is up to date (its inputs did not change)")
                return "unchanged"
        try:
            deps = pipe.hash_deps(stage)
        except PipelineError as exc:
            raise StageFailed(exc.message) from None
        params = pipe.params_of(stage)
        key = runcache.key(stage.name, stage.cmd, deps, params)
        use_cache = self.use_run_cache and not stage.always_changed and bool(stage.outs)
        if use_cache and "forced" not in reasons:
            hit = runcache.lookup(self.runs_dir, key)
            if hit is not None and self.fetch is not None:
                self.fetch({h.oid for h in hit.values()})
            if hit is not None and self._restore(stage, hit):
                self.emit(f"stage {stage.name}: restored outputs from the run-cache")
                self._record(stage, deps)
                return "restored"
        self.emit(f"running stage {stage.name} ({'; '.join(reasons)}): {stage.cmd}")
        started = time.monotonic()
        self._clear_outs(stage)
        self._execute(stage)
        self.emit(f"stage {stage.name} done in {time.monotonic() - started:.1f} s")
        entry = self._record(stage, deps)
        if use_cache:
            runcache.save(self.runs_dir, key, entry.outs)
        return "ran"

    def _clear_outs(self, stage: Stage) -> None:
        """Remove cached outs (after making sure their bytes are in the cache)."""
        for out in stage.outs:
            path = self.pipe.abspath(out.path)
            if out.persist and os.path.lexists(path):
                _unlink_from_cache(path)  # the stage may write to it: never into the cache
            if out.persist or not out.cache or not os.path.lexists(path):
                continue
            snapshot(self.pipe.odb, self.pipe.state, self.pipe.jobs, path, store=True)
            fsio.remove_tree(path)
        for out in stage.outs:
            fsio.makedirs(os.path.dirname(self.pipe.abspath(out.path)))

    def _execute(self, stage: Stage) -> None:
        cwd = self.pipe.abspath(stage.wdir)
        prefix = f"[{stage.name}] " if self.jobs > 1 else ""
        tail: deque[str] = deque(maxlen=10)
        with self.procs_lock:
            if self.stopping.is_set():
                raise StageFailed("not started: mlv is stopping")
            try:
                proc = subprocess.Popen(stage.cmd, shell=True, cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=True)
            except OSError as exc:
                raise StageFailed(f"cannot start: {exc}") from None
            self.procs.add(proc)

        def pump(stream: object, keep: bool) -> None:
            for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if keep:
                    tail.append(line)
                self.emit(prefix + line)

        # Daemon threads: a process that escaped the stage's group and still holds its
        # output open must not keep a stopped mlv from exiting.
        readers = [threading.Thread(target=pump, args=(proc.stdout, False), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)]
        for reader in readers:
            reader.start()
        code = proc.wait()
        for reader in readers:
            while reader.is_alive() and not self.stopping.is_set():
                reader.join(0.2)
            reader.join(KILL_AFTER)
        self.procs.discard(proc)
        if self.stopping.is_set():
            # Even a stage that trapped the signal and exited 0 may have stopped halfway:
            # never record it.
            raise StageFailed("stopped: mlv was interrupted")
        if code != 0:
            last = "\n".join(f"    {line}" for line in tail)
            raise StageFailed(f"`{stage.cmd}` exited with code {code}"
                              + (f"; its last lines of stderr:\n{last}" if last else ""))

    def _record(self, stage: Stage, deps: dict[str, Hashed]) -> lockfile.LockEntry:
        """Store cached outs, link them, and write the stage's lock entry."""
        pipe = self.pipe
        for out in stage.outs:
            path = pipe.abspath(out.path)
            if not os.path.lexists(path):
                raise StageFailed(f"it did not create its output {out.path}")
            # Every out is stored (so the run-cache can restore it); only cached outs
            # are git-ignored and linked from the cache.
            snap = snapshot(pipe.odb, pipe.state, pipe.jobs, path, store=True)
            if out.cache:
                if wants_links(self.link_types):
                    for f, e in zip(snap.files, snap.entries):
                        st = materialize(pipe.odb, e.oid, f.path, self.link_types, e.exec,
                                         self.link_skip)
                        pipe.state.set(st, e.oid)
            pipe.forget(out.path)
        try:
            entry = pipe.entry_now(stage, deps)
        except PipelineError as exc:
            raise StageFailed(exc.message) from None
        with self.write_lock:
            pipe.lock[stage.name] = entry
            lockfile.write(pipe.root, pipe.lock, pipe.dag.order_in_file)
            pipe.state.save()
        return entry

    def _restore(self, stage: Stage, outs: dict[str, Hashed]) -> bool:
        """Put a run-cache hit's outputs in place; False (a miss: the stage runs) when
        the hit cannot be used: other outs, objects not in the cache, or a manifest that
        is refused (it may have come from a remote), which also says one warning line."""
        pipe = self.pipe
        if set(outs) != {o.path for o in stage.outs}:
            return False
        try:
            wanted = self._restorable(outs)
        except MlvError as exc:
            self.emit(f"warning: stage {stage.name}: run-cache entry not used: {exc.message}")
            return False
        if wanted is None:
            return False
        self._clear_outs(stage)
        for path, entries in wanted:
            base = pipe.abspath(path)
            if len(entries) == 1 and entries[0].path == "":
                targets = [(base, entries[0])]
            else:
                fsio.makedirs(base)
                targets = [(os.path.join(base, *e.path.split("/")), e) for e in entries]
            for dst, e in targets:
                st = materialize(pipe.odb, e.oid, dst, self.link_types, e.exec, self.link_skip)
                pipe.state.set(st, e.oid)
            pipe.forget(path)
        return True

    def _restorable(self, outs: dict[str, Hashed]) -> list[tuple[str, list[Entry]]] | None:
        """Each out's files, or None when some object is not in the cache. A manifest
        that is refused raises its MlvError."""
        from mlv.diff import load_entries
        from mlv.pointer import Out

        odb = self.pipe.odb
        wanted = []
        for path, hashed in outs.items():
            out = Out(os.path.basename(path), hashed.oid, hashed.size, hashed.nfiles)
            entries = load_entries(odb, out)
            if entries is None or odb.existing([e.oid for e in entries]) != {
                    e.oid for e in entries}:
                return None
            wanted.append((path, entries))
        return wanted


@contextmanager
def _stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    """While stages run, SIGTERM and SIGHUP raise Terminated in the main thread, as
    Ctrl-C raises KeyboardInterrupt, so they take the same path: stop the stages, record
    nothing for them, exit. Once stopping, further signals are ignored (the stop takes
    at most KILL_AFTER seconds). Handlers are set only where they are at their defaults
    (`nohup` keeps SIGHUP ignored; a program using mlv's API keeps its own handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    saved = {}
    for sig in (signal.SIGINT, *STOP_SIGNALS):
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        if signal.getsignal(sig) is default:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _signal_groups(groups: list[int], sig: signal.Signals) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass  # the group is gone


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _unlink_from_cache(path: str) -> None:
    """Replace hard links and symlinks (into the cache) with private copies."""
    import stat as stat_mod

    files = []
    if os.path.isdir(path) and not os.path.islink(path):
        for folder, _dirs, names in os.walk(path):
            files += [os.path.join(folder, n) for n in names]
    else:
        files = [path]
    for file in files:
        st = os.lstat(file)
        if stat_mod.S_ISLNK(st.st_mode) or st.st_nlink > 1:
            tmp = fsio.tmp_name(file)
            fsio.copy_new(os.path.realpath(file), tmp, 0o644)
            fsio.commit(tmp, file)
