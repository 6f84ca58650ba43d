"""Everything mlv asks of git. The only module that imports git (gitpython), lazily."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

from mlv import fsio, paths
from mlv.errors import PathError, ScmError


def _git(root: str, *args: str) -> Any:
    import git  # heavy: only commands that need git pay for it

    try:
        return git.Repo(root, search_parent_directories=False).git.execute(
            ["git", *args], stdout_as_string=False
        )
    except git.GitCommandError as exc:
        raise ScmError(f"git {' '.join(args[:2])} failed: {exc.stderr.strip()}") from None


def toplevel(path: str) -> str | None:
    """The root of the git work tree containing `path`, or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True
        )
    except OSError:
        raise ScmError("git is not installed", hint="install git, or use `--no-scm`") from None
    return os.path.realpath(out.stdout.strip()) if out.returncode == 0 else None


def hooks_dir(root: str) -> str:
    """The folder git runs hooks from (`.git/hooks`, or `core.hooksPath`)."""
    out = subprocess.run(["git", "rev-parse", "--git-path", "hooks"], cwd=root,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise ScmError("git cannot tell where its hooks are", hint="run it in a git repository")
    return os.path.normpath(os.path.join(root, out.stdout.strip()))


def tracked_quick(root: str, rel: str) -> list[str]:
    """What git tracks at or below `rel`, by one `git ls-files` (about 2 ms, and no
    gitpython: every command asks this). Empty when git cannot tell."""
    try:
        out = subprocess.run(["git", "--literal-pathspecs", "ls-files", "-z", "--", rel],
                             cwd=root, capture_output=True)
    except OSError:
        return []
    if out.returncode != 0:
        return []
    return [p for p in out.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def tracked(root: str, paths: list[str]) -> list[str]:
    """Which of `paths` (or files below them) git tracks, relative to `root`."""
    if not paths:
        return []
    out = _git(root, "ls-files", "-z", "--", *paths)
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


# ---- ignore files -------------------------------------------------------------------

def _ignore_lines(path: str) -> list[str]:
    try:
        return fsio.read_text(path, fsio.IGNORE_LIMIT, path, ScmError).splitlines()
    except FileNotFoundError:
        return []


def ignore_entry(name: str) -> str:
    """The .gitignore line that matches exactly one name in its folder. A name with a
    control character has none: a newline would add a line (a pattern) of its own."""
    if paths.has_control_character(name):
        raise PathError(f"{name!r} contains a control character, so no .gitignore line can "
                        "name it", hint="rename it, then add it")
    special = "\\*?[!# "
    escaped = "".join("\\" + c if c in special else c for c in name)
    return "/" + escaped


def check_ignore(folder: str, name: str) -> None:
    """Raise what `add_ignore(folder, name)` would raise, without writing: the name has
    a .gitignore line, `folder/.gitignore` is a regular text file within the limit, and
    the folder can take the rewritten file."""
    ignore_entry(name)
    path = os.path.join(folder, ".gitignore")
    _ignore_lines(path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScmError(f"cannot write {path}: permission denied",
                       hint=f"check the permissions of {folder}")


def add_ignore(folder: str, name: str) -> bool:
    """Add `/name` to `folder/.gitignore` unless present. True if the file changed."""
    path = os.path.join(folder, ".gitignore")
    lines = _ignore_lines(path)
    entry = ignore_entry(name)
    if entry in lines:
        return False
    fsio.atomic_write(path, ("\n".join(lines + [entry]) + "\n").encode())
    return True


def remove_ignore(folder: str, name: str) -> bool:
    path = os.path.join(folder, ".gitignore")
    lines = _ignore_lines(path)
    entry = ignore_entry(name)
    if entry not in lines:
        return False
    kept = [line for line in lines if line != entry]
    if kept:
        fsio.atomic_write(path, ("\n".join(kept) + "\n").encode())
    else:
        fsio.remove_file(path)
    return True


# ---- history --------------------------------------------------------------------------

def revisions(root: str, all_branches: bool, all_tags: bool, all_commits: bool) -> list[str]:
    """Commit ids in the chosen scope (the workspace itself is not a revision)."""
    revs: list[str] = []
    if all_commits:
        out = _git(root, "rev-list", "--all")
        return sorted(set(out.decode().split()))
    if all_branches:  # local branches and the remote-tracking ones (a fresh clone has those)
        out = _git(root, "for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes")
        revs += out.decode().split()
    if all_tags:
        out = _git(root, "for-each-ref", "--format=%(*objectname) %(objectname)", "refs/tags")
        for line in out.decode().splitlines():
            parts = line.split()
            revs.append(parts[0])  # the peeled commit when annotated, else the tag target
    return sorted(set(revs))


def ref_names(root: str, branches: bool, tags: bool) -> list[tuple[str, str]]:
    """(short name, full ref name) of the local branches and/or tags that name a commit,
    sorted. A clone brings its tags: one named `-x` is a valid ref, but only its full
    name (`refs/tags/-x`) is safe to pass on; a tag of a blob or tree is left out."""
    refs = (["refs/heads"] if branches else []) + (["refs/tags"] if tags else [])
    if not refs:
        return []
    out = _git(root, "for-each-ref",
               "--format=%(objecttype) %(*objecttype) %(refname) %(refname:short)", *refs)
    found = []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        kind, peeled, full, short = (line.split(" ", 3) + ["", "", "", ""])[:4]
        if "commit" in (kind, peeled) and full and short:
            found.append((short, full))
    return sorted(found)


def resolve_commit(root: str, rev: str) -> str:
    """The commit id a revision names (a branch, tag, `HEAD~2`, an id)."""
    if not rev or rev.startswith("-") or paths.has_control_character(rev):
        raise ScmError(f"{rev!r} is not a git revision", hint="name a branch, tag or commit")
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options",
                          rev + "^{commit}"], cwd=root, capture_output=True)
    if out.returncode != 0:
        raise ScmError(f"unknown git revision {rev!r}",
                       hint="name a branch, tag or commit of this repository (see `git log`)")
    return out.stdout.decode().strip()


def ls_tree(root: str, commit: str) -> dict[str, tuple[str, str, int]]:
    """Every file of a commit: POSIX path -> (mode, blob id, size). Symlinks have mode
    120000, submodules (no blob) are left out."""
    # a plain subprocess, not `_git`: importing gitpython would cost more than listing
    # (every command that reads a revision comes here)
    out = subprocess.run(["git", "ls-tree", "-r", "-z", "-l", "--full-tree", commit],
                         cwd=root, capture_output=True)
    if out.returncode != 0:
        raise ScmError(f"git ls-tree failed: {out.stderr.decode(errors='replace').strip()}")
    listing = out.stdout
    files: dict[str, tuple[str, str, int]] = {}
    for record in listing.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = record.partition("\t")
        parts = meta.split()
        if len(parts) == 4 and parts[1] == "blob":
            files[path] = (parts[0], parts[2], int(parts[3]) if parts[3].isdigit() else 0)
    return files


def read_blobs(root: str, blob_ids: list[str]) -> dict[str, bytes]:
    """The contents of git blobs, by one `git cat-file --batch`."""
    wanted = list(dict.fromkeys(blob_ids))
    if not wanted:
        return {}
    proc = subprocess.run(["git", "cat-file", "--batch"], cwd=root, capture_output=True,
                          input="".join(f"{b}\n" for b in wanted).encode())
    if proc.returncode != 0:
        raise ScmError(f"git cat-file failed: {proc.stderr.decode(errors='replace').strip()}")
    found: dict[str, bytes] = {}
    data, pos = proc.stdout, 0
    while pos < len(data):
        header_end = data.index(b"\n", pos)
        header = data[pos:header_end].split()
        size = int(header[2]) if len(header) == 3 else 0
        if len(header) == 3:
            found[header[0].decode()] = data[header_end + 1: header_end + 1 + size]
        pos = header_end + 1 + size + (1 if len(header) == 3 else 0)
    return found


# Bytes of git blobs held in memory at once: each file is bounded, but a clone's branch
# can hold thousands of 1 MiB pointers that git compresses to almost nothing.
BLOB_BATCH = 64 << 20


# A git blob bigger than this is streamed to a file by git, never held whole: a clone's
# 10 MB pack can hold a 10 GB blob of zeros.
BLOB_STREAMED = 8 << 20


def copy_blob(root: str, blob: str, fd: int) -> None:
    """Write the git blob `blob` (a full id) to the open file `fd`, streamed by git."""
    out = subprocess.run(["git", "-c", f"core.bigFileThreshold={BLOB_STREAMED}", "cat-file",
                          "blob", blob], cwd=root, stdout=fd,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise ScmError(f"git cat-file failed: {out.stderr.decode(errors='replace').strip()}")


def read_blobs_in_batches(root: str, blobs: dict[str, int]) -> Iterator[dict[str, bytes]]:
    """`read_blobs` for {blob id: size}, at most about BLOB_BATCH bytes at a time."""
    batch: list[str] = []
    held = 0
    for blob, size in blobs.items():
        if batch and held + size > BLOB_BATCH:
            yield read_blobs(root, batch)
            batch, held = [], 0
        batch.append(blob)
        held += size
    if batch:
        yield read_blobs(root, batch)


def pointer_blobs(root: str, revs: list[str], suffix: str, limit: int) -> Iterator[bytes]:
    """The contents of every distinct file named `*suffix` in any of `revs`. One larger
    than `limit` bytes raises (it is not read): what it names cannot be known."""
    blob_ids: dict[str, int] = {}
    for rev in revs:
        for path, (_, blob, size) in ls_tree(root, rev).items():
            if path.endswith(suffix):
                if size > limit:
                    raise ScmError(f"{path} at commit {rev[:8]} is larger than {limit} bytes",
                                   hint="mlv cannot tell which data it names; remove that "
                                        "commit from the scope (leave out --all-commits, "
                                        "or delete the branch or tag)")
                blob_ids[blob] = size
    for found in read_blobs_in_batches(root, blob_ids):
        yield from found.values()


# ---- other repositories: clones that `mlv ls/get/import` read ---------------------------

# `ext::CMD` runs a command and `fd::N` talks over a file descriptor (with none, git
# waits forever): never for a URL mlv is given or finds in a pointer, whatever the
# user's git config allows
_NO_COMMAND_TRANSPORTS = ("-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never")


def _remote_git(args: list[str], cwd: str | None = None) -> str | None:
    """Run a git command that talks to another repository: never prompts (no terminal
    to answer it), never reads stdin. None on success, else git's one-line reason."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="")
    try:
        out = subprocess.run(["git", *_NO_COMMAND_TRANSPORTS, *args], cwd=cwd,
                             capture_output=True,
                             stdin=subprocess.DEVNULL, env=env)
    except OSError:
        raise ScmError("git is not installed", hint="install git") from None
    if out.returncode == 0:
        return None
    lines = [line.strip() for line in out.stderr.decode(errors="replace").splitlines()
             if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    reason = (fatal or lines[-1:] or [f"git exited with {out.returncode}"])[0]
    return reason.removeprefix("fatal: ").removeprefix("error: ")[:300]


def clone_mirror(url: str, dest: str) -> str | None:
    """Clone `url` into the new folder `dest` as a mirror (a bare repository whose
    branches and tags are the origin's own). None on success, else why not."""
    return _remote_git(["clone", "--mirror", "--quiet", "--", url, dest])


def fetch_mirror(git_dir: str) -> str | None:
    """Bring a mirror's branches and tags up to date with its origin. None on success,
    else why not."""
    return _remote_git(["fetch", "--quiet", "--prune", "--force", "origin"], cwd=git_dir)


def has_commit(root: str, commit: str) -> bool:
    """True when the repository at `root` holds the commit `commit` (a full id)."""
    out = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root,
                         capture_output=True)
    return out.returncode == 0


def is_bare(path: str) -> bool:
    """True when `path` is a bare git repository (a folder git can clone, no work tree)."""
    out = subprocess.run(["git", "rev-parse", "--is-bare-repository"], cwd=path,
                         capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "true"
