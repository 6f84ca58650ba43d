"""The one rule for paths that come from untrusted places.

Every path read from a committed file (pointer outs; stage deps, outs, params, metrics
and plots; mlv.lock) or from a remote (manifest entries, run-cache entries) is held to
this rule where it is read (`problem`), and again right before anything is written
(`problem_on_disk`):

- relative, normalized (no empty, `.` or `..` component), POSIX separators, no NUL or
  other control character (a newline would break `.gitignore`);
- no component that names `.git` or `.mlv`, compared case-insensitively and without
  what some filesystems drop or ignore: trailing dots and spaces (`.GIT.`, `.git `),
  an NTFS stream suffix (`.git::$INDEX_ALLOCATION`), the invisible characters that
  HFS+ ignores (`.g\u200cit`), and the 8.3 short name `git~1`;
- at most 4096 bytes, 255 bytes a component and 255 components deep;
- on disk: no folder along the path is a symlink (a clone can commit one pointing
  at `.git` or at `/`), and the path stays inside the repository.
"""

from __future__ import annotations

import os
import re
import stat

# Folders no tracked path may name or cross.
RESERVED = (".git", ".mlv")
_SHORT_NAMES = ("git~1", "mlv~1")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:(?:[\\/]|\Z)")
# The UTF-8 bytes of a plain path (see `_plain`): printable ASCII but '\\', ':' and '~',
# and every byte of a non-ASCII character (all >= 0x80).
_PLAIN_BYTES = bytes(c for c in range(0x20, 0x100) if c != 0x7f and chr(c) not in "\\:~")
# Code points HFS+ ignores in names (as git's is_hfs_dotgit does), and other invisible
# format characters: `.g\u200cit` is `.git` on a Mac.
_IGNORABLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff]")
MAX_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_DEPTH = 255
_PLAIN_MAX_LEN = 255  # bytes: a plain path this short is within every limit above


def reserved_name(name: str) -> str | None:
    """`.git` or `.mlv` when `name` (one component) would name that folder somewhere."""
    folded = _IGNORABLE.sub("", name.partition(":")[0]).rstrip(". ").casefold()
    if folded in RESERVED:
        return folded
    if folded in _SHORT_NAMES:
        return "." + folded[:3]
    return None


def problem(rel: str) -> str | None:
    """Why `rel` cannot be a tracked path relative to its base folder, or None when it
    can. `rel` uses `/` separators; `\\` counts as one too, so a path that is safe here
    is safe on every platform."""
    if type(rel) is str and _plain(rel):
        return None
    if not isinstance(rel, str) or not rel:
        return "the path is empty"
    found = _CONTROL.search(rel)
    if found:
        return f"path {rel!r} contains a control character ({_char_name(found.group())})"
    if absolute(rel):
        return f"absolute path {rel!r} is not allowed; use a path relative to the repository"
    parts = re.split(r"[\\/]", rel)
    if ".." in parts:
        return f"path {rel!r} contains '..'"
    if "" in parts or "." in parts:
        return f"path {rel!r} is not normalized (empty or '.' component)"
    for part in parts:
        folder = reserved_name(part)
        if folder:
            return f"path {rel!r} names {folder}/, which mlv never writes to"
    return _too_long(rel, parts)


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate counts 3 bytes


def _too_long(rel: str, parts: list[str]) -> str | None:
    shown = rel if len(rel) <= 60 else rel[:57] + "..."
    if len(parts) > MAX_DEPTH:
        return f"path {shown!r} is {len(parts)} folders deep (at most {MAX_DEPTH})"
    if len(_encoded(rel)) > MAX_BYTES:
        return f"path {shown!r} is longer than {MAX_BYTES} bytes"
    if any(len(_encoded(p)) > MAX_NAME_BYTES for p in parts):
        return f"path {shown!r} has a name longer than {MAX_NAME_BYTES} bytes"
    return None


def first_problem(rels: list[str]) -> tuple[int, str] | None:
    """The index of the first of `rels` (all strings) that `problem` refuses, and why;
    None when every one is fine. Fast for the 100,000+ paths of a manifest."""
    # Joined by '/', the paths are plain exactly when each one is: a path that is empty,
    # starts with '.' or '/' or ends with '/' shows as '//', '/.' or an end.
    if _plain("/".join(rels), max(map(len, rels), default=0)):
        return None
    for i, rel in enumerate(rels):
        found = problem(rel)
        if found:
            return i, found
    return None


def _plain(rel: str, longest: int | None = None) -> bool:
    """A fast yes for the common case: a path without control characters, '\\', ':' or
    '~', whose components are not empty and do not start with '.', passes every check
    in `problem` (no separator but '/', no drive, no '..', and no component that names
    .git or .mlv, which needs a leading '.' or a '~'; no non-ASCII character folds to
    either, and a path of at most 255 characters is within every length limit; an
    invisible character sends the path to the full rule). Keep this in step with
    `problem` when a rule is added there. `longest`: the length of the longest path
    when `rel` is several joined by '/'."""
    if not rel or rel[0] in "./" or rel[-1] == "/" or "/." in rel or "//" in rel:
        return False
    size = len(rel) if longest is None else longest
    if not rel.isascii():
        if _IGNORABLE.search(rel):
            return False
        size *= 4  # at most 4 UTF-8 bytes a character
    if size > _PLAIN_MAX_LEN:
        return False
    try:
        data = rel.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return not data.translate(None, _PLAIN_BYTES)


def absolute(path: str) -> bool:
    """True when `path` is absolute on some platform (`/x`, `\\\\server`, `C:`, `C:/x`)."""
    return path.startswith(("/", "\\")) or bool(_DRIVE.match(path))


def has_control_character(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _char_name(char: str) -> str:
    names = {"\0": "NUL", "\n": "a newline", "\r": "a carriage return", "\t": "a tab"}
    return names.get(char, f"U+{ord(char):04X}")


# Files mlv reads as instructions: an out that writes one would let remote bytes
# (which no reviewer sees in a diff) change the pipeline, a pointer or .gitignore.
OWN_FILES = ("mlv.yaml", "mlv.lock", ".gitignore")


def own_file(rel: str) -> str | None:
    """Why an output (of a pointer or a stage) may not be at `rel`, or None: mlv's own
    files, `.gitignore` and pointers are written by people or by mlv, never restored
    from the cache."""
    name = rel.rsplit("/", 1)[-1].casefold()
    if name in OWN_FILES or name.endswith(".mlv"):
        return (f"{rel} is one of the files mlv reads (mlv.yaml, mlv.lock, .gitignore, "
                "pointers); it cannot be a tracked output")
    return None


def problem_on_disk(root: str, rel: str, allow_link_into: str | None = None) -> str | None:
    """Why writing `root/rel` would leave the repository, or None when it is safe.

    Every folder along `rel` must be a real folder (or not exist yet): a symlinked
    folder is refused wherever it points. The last component may be a symlink only
    into `allow_link_into` (the cache, for the `symlink` link type); writes replace it
    by rename and never follow it.
    """
    found = problem(rel)
    if found:
        return found
    parts = rel.split("/")
    here = root
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return None  # the rest will be created as real folders
        except OSError:
            return None  # not a symlink we could follow; the write will say what is wrong
        if stat.S_ISLNK(st.st_mode):
            last = i == len(parts) - 1
            if last and allow_link_into is not None:
                real = os.path.realpath(here)
                if real.startswith(allow_link_into.rstrip(os.sep) + os.sep):
                    return None
            if last:
                return None if _link_stays_in(here, root) else (
                    f"{rel} is a symlink to outside the repository")
            where = "/".join(parts[:i + 1])
            return f"{rel} goes through the symlink {where}; mlv does not write through symlinks"
    return None


def _link_stays_in(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    top = os.path.realpath(root)
    if not (real == top or real.startswith(top + os.sep)):
        return False
    inside = os.path.relpath(real, top).split(os.sep)
    return not any(reserved_name(p) for p in inside)


def inside(path: str, root: str) -> bool:
    """True when absolute `path` is `root` or below it (no symlinks resolved)."""
    root = root.rstrip(os.sep)
    return path == root or path.startswith(root + os.sep)


def target_problem(root: str, path: str, folder: bool = False) -> str | None:
    """Why mlv may not write the file (or, with `folder`, into the folder) `path` that
    the command line names (relative to the current folder), or None. Outside the
    repository the place is the user's to choose; inside it, a clone may have planted a
    symlink on the way (`mlv_plots -> .git/hooks`, `report_plots -> ~`), so the rule of
    tracked paths holds: no `.git` or `.mlv`, no symlinked folder (the folder itself
    included)."""
    top = os.path.realpath(root)
    full = os.path.normpath(os.path.join(os.path.realpath(os.getcwd()), path))
    if not inside(full, top) or full == top:
        return None
    rel = os.path.relpath(full, top).replace(os.sep, "/")
    found = problem_on_disk(top, rel)
    if found is None and folder and os.path.islink(full):
        found = f"{rel} is a symlink; mlv does not write through symlinks"
    return found
