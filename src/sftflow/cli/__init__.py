"""The sftflow command line: one Typer app, its commands in one module per group.

    sftflow init quickstart && sftflow run quickstart/sftflow.yaml

app.py holds what every command shares (one-line errors, config loading); project.py `init`;
data.py prepare, synth, audit; training.py train, run, estimate; trained.py the commands that use
a trained model (eval, report, export, serve, chat, review).
"""

from sftflow.cli import data, project, trained, training  # noqa: F401 - importing a module registers its commands
from sftflow.cli.app import STATE, app, hoist_debug, main

__all__ = ["STATE", "app", "hoist_debug", "main"]
