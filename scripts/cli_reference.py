"""Writes docs/cli.md from the CLI's own --help texts (a test checks it is current).

    uv run python scripts/cli_reference.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alplug.cli import cli  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def render() -> str:
    parts = ["# CLI reference", "", "Generated from `--help` by `scripts/cli_reference.py`; do not edit by hand.", ""]
    ctx = click.Context(cli, info_name="alplug", terminal_width=100, **cli.context_settings)
    commands = [("alplug", cli, ctx)]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        cctx = click.Context(command, info_name=name, parent=ctx, terminal_width=100)
        commands.append((f"alplug {name}", command, cctx))
        if isinstance(command, click.Group):  # alplug project init, next, ...
            for sub in command.list_commands(cctx):
                subcommand = command.get_command(cctx, sub)
                commands.append((f"alplug {name} {sub}", subcommand,
                                 click.Context(subcommand, info_name=sub, parent=cctx, terminal_width=100)))
    for title, command, cctx in commands:
        parts += [f"## `{title}`", "", "```text", command.get_help(cctx), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
