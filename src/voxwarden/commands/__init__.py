"""Thin typer commands, one module per capability; `voxwarden.cli` assembles them."""
