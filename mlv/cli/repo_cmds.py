"""`mlv init` and `mlv config`."""

from __future__ import annotations

import os

import click

from mlv.cli import ui
from mlv.errors import ConfigError, UsageError


@click.command()
@click.option("--force", "-f", is_flag=True,
              help="Repair an existing .mlv/ (re-create its .gitignore; config is kept).")
@click.option("--no-scm", is_flag=True, help="Allow a plain folder that is not a git work tree.")
def init(force: bool, no_scm: bool) -> None:
    """Make this git repository an mlv repository (creates .mlv/).

    \b
    Example:
      git init && mlv init
    """
    from mlv.repo import Repo

    repo, created = Repo.init(os.getcwd(), force=force, no_scm=no_scm)
    if not created:
        ui.echo(f"mlv is already initialized in {repo.root} (--force repairs .mlv/)")
        return
    ui.echo(f"initialized mlv in {repo.mlv_dir}")
    if not no_scm:
        ui.echo("next: git add .mlv && git commit -m 'Initialize mlv'")


@click.command()
@click.argument("key")
@click.argument("value", required=False)
@click.option("--local", "level", flag_value="local",
              help="Use .mlv/config.local (git-ignored, this machine only).")
@click.option("--global", "level", flag_value="global", help="Use ~/.config/mlv/config.")
@click.option("--unset", is_flag=True, help="Remove KEY.")
def config(key: str, value: str | None, level: str | None, unset: bool) -> None:
    """Show or set a config value (cache.type, cache.dir, core.jobs, core.remote).

    Without VALUE, prints the effective value. Writes go to .mlv/config (committed)
    unless --local or --global is given; a cache.dir outside the repository goes to
    .mlv/config.local, since clones do not use one from .mlv/config.

    \b
    Example:
      mlv config cache.type hardlink,copy
    """
    from mlv.api import config as api

    if unset and value is not None:
        raise UsageError("--unset takes no VALUE")
    if unset:
        if not api.unset(key, level or "repo"):
            ui.echo(f"{key} was not set at that level")
        return
    if value is None:
        shown = api.get(key, level)
        if shown is None:
            where = f"the {level} config" if level else "any config"
            raise ConfigError(f"{key} is not set in {where}",
                              hint=f"set it with `mlv config {key} VALUE`")
        ui.show(shown)
        return
    why = api.committed_refuses(key, value) if level is None else None
    if api.set_value(key, value, level) != (level or "repo"):
        ui.echo(f"{key} is set in .mlv/config.local (this clone only): {why}")


@click.command("install")
@click.option("--uninstall", is_flag=True, help="Remove mlv's hooks (and put yours back).")
def install(uninstall: bool) -> None:
    """Install git hooks: post-checkout and post-merge run `mlv checkout`, pre-push runs
    `mlv push` (a failed push stops the git push), pre-commit warns when tracked data
    differs from its pointers. Hooks you already have are kept and run first.

    \b
    Example:
      mlv install
    """
    from mlv.api.hooks import install as api_install

    done = api_install(ui.find_repo(), uninstall)
    verb = "removed" if uninstall else "installed"
    ui.echo(f"{verb} git hooks: {', '.join(done.hooks) or 'none'}")
    for name in done.kept:
        ui.echo(f"your own {name} hook " + ("is back in place" if uninstall
                                          else f"was kept as {name}.pre-mlv and runs first"))


COMMANDS = [init, config, install]
