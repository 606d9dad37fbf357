"""Sub-command groups of the `evocdss` CLI, each a `typer.Typer` that api/cli.py mounts."""
