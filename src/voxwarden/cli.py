"""`voxwarden` — the one command-line entry point. Each capability's commands live in voxwarden.commands."""

from __future__ import annotations

import typer

from voxwarden import __version__
from voxwarden.commands.assess import assess_cmd
from voxwarden.commands.corpus import corpus_app
from voxwarden.commands.evaluate import eval_cmd
from voxwarden.commands.label import label_app, notice_cmd
from voxwarden.commands.mark import mark_app
from voxwarden.commands.rectify import rectify_app
from voxwarden.commands.scan import scan_cmd
from voxwarden.commands.serve import keys_app, serve_cmd
from voxwarden.commands.store import store_app
from voxwarden.commands.train import train_cmd
from voxwarden.commands.verify import verify_cmd

app = typer.Typer(
    name="voxwarden",
    help="Detect, label and audit synthetic (deepfake) speech for voice platforms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("scan")(scan_cmd)
app.command("eval")(eval_cmd)
app.command("train")(train_cmd)
app.command("verify")(verify_cmd)
app.command("serve")(serve_cmd)
app.command("assess")(assess_cmd)
mark_app.command("notice")(notice_cmd)
mark_app.add_typer(label_app, name="label")
app.add_typer(mark_app, name="mark")
app.add_typer(corpus_app, name="corpus")
app.add_typer(store_app, name="store")
app.add_typer(keys_app, name="admin")
app.add_typer(rectify_app, name="rectify")


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
