"""`voxwarden` — the one command-line entry point. Each capability's commands live in voxwarden.commands."""

from __future__ import annotations

import typer

from voxwarden import __version__
from voxwarden.commands.scan import scan_cmd

app = typer.Typer(
    name="voxwarden",
    help="Detect, label and audit synthetic (deepfake) speech for voice platforms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("scan")(scan_cmd)


@app.command("version")
def version_cmd() -> None:
    """Print the voxwarden version and the packaged models."""
    from voxwarden.detect import packaged_models

    typer.echo(f"voxwarden {__version__}")
    typer.echo("packaged models: " + (", ".join(packaged_models()) or "none"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
