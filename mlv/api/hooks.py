"""`mlv install`: git hooks that keep data in step with git. A hook the user already had
is kept beside ours (`NAME.pre-mlv`) and run first; `--uninstall` puts it back."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field

from mlv import fsio, scm
from mlv.errors import MlvError
from mlv.repo import Repo

MARK = "# installed by `mlv install`; `mlv install --uninstall` removes it"
KEPT = ".pre-mlv"  # the user's own hook, run before ours

# git's own checkout or merge is done whatever mlv says: a failed `mlv checkout` is
# reported, with what to run, and never fails the hook.
_NOT_CHECKED_OUT = ('{ echo "mlv: git is done, but the data of this commit was not checked '
                    'out (see above); run \\`mlv pull\\` (or \\`mlv checkout\\` if the cache '
                    'has it)" >&2; exit 0; }')

# What each hook runs after the user's own hook (`mlv` is a shell function that runs the
# mlv that installed the hook, whatever PATH git gives hooks).
BODIES = {
    # a branch checkout (not a file checkout, $3 = 0) brings that commit's data
    "post-checkout": 'if [ "$3" = 1 ]; then mlv checkout || ' + _NOT_CHECKED_OUT + "; fi\n",
    "post-merge": "mlv checkout || " + _NOT_CHECKED_OUT + "\n",
    "pre-push": ('mlv push || { echo "mlv: the data of these commits could not be pushed '
                 '(see above); fix it and push again (git push --no-verify skips this '
                 'check)" >&2; exit 1; }\n'),
    "pre-commit": ('mlv status -q 2>/dev/null || echo "mlv: tracked data differs from its '
                   'pointers; run \\`mlv status\\`, then \\`mlv add\\` what you mean to commit" '
                   '>&2\nexit 0\n'),
}


@dataclass
class Installed:
    hooks: list[str] = field(default_factory=list)  # written or removed
    kept: list[str] = field(default_factory=list)  # the user's own, kept and run first


def _script(name: str) -> str:
    run = shlex.quote(sys.executable)
    return (f"#!/bin/sh\n{MARK}\nmlv() {{ {run} -m mlv \"$@\"; }}\n"
            f'if [ -x "$0{KEPT}" ]; then "$0{KEPT}" "$@" || exit $?; fi\n{BODIES[name]}')


def _ours(path: str) -> bool:
    try:
        return MARK in fsio.read_text(path, fsio.CONFIG_LIMIT, path)
    except (FileNotFoundError, MlvError):
        return False


def install(repo: Repo, uninstall: bool = False) -> Installed:
    if not repo.has_scm:
        raise MlvError("mlv install writes git hooks, and this repository has no git",
                       hint="run it in a git repository")
    folder = scm.hooks_dir(repo.root)
    fsio.makedirs(folder)
    done = Installed()
    for name in BODIES:
        path = os.path.join(folder, name)
        if uninstall:
            if _ours(path):
                fsio.remove_file(path)
                done.hooks.append(name)
                if os.path.lexists(path + KEPT):
                    os.replace(path + KEPT, path)
                    done.kept.append(name)
            continue
        if os.path.lexists(path) and not _ours(path):
            if os.path.lexists(path + KEPT):
                raise MlvError(f"{path} is not mlv's hook, and {path}{KEPT} exists too",
                               hint="merge the two by hand, then run `mlv install` again")
            os.replace(path, path + KEPT)  # the user's hook: kept, and run before ours
            done.kept.append(name)
        fsio.atomic_write(path, _script(name).encode(), 0o755)
        done.hooks.append(name)
    return done
