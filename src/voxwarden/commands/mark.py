"""`voxwarden mark embed|detect|keygen`: the keyed audio watermark.

Exit codes:
  embed   0 marked; 2 the input could not be read/written or the mark did not survive the output
          format (self-check failed: then OUT is not written and an existing OUT is left as it was);
          3 usage error (bad payload/ids, bad key file, unsupported suffix).
  detect  0 mark present; 1 no mark found; 2 the file could not be read; 3 usage/key error.
  keygen  0 written; 3 the file exists (never overwritten) or cannot be written.

Without --key the public demo key is used (it is NOT secret: anyone can find or forge such marks).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_FAILED, EXIT_FLAGGED, EXIT_OK, EXIT_USAGE, err_console

mark_app = typer.Typer(help="Embed and detect the keyed audio watermark.", no_args_is_help=True)


class OutFormat(StrEnum):
    text = "text"
    json = "json"


def _marker(key: Path | None):  # -> Marker
    from voxwarden.mark.keys import KeyFileError
    from voxwarden.mark.watermark import Marker

    if key is None:
        err_console.print("[yellow]note:[/yellow] using the public demo key (not secret); pass --key FILE")
        return Marker()
    try:
        return Marker.from_key_file(key)
    except KeyFileError as e:
        err_console.print(f"[red]key error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e


def parse_payload(payload_hex: str | None, provider: str | None, content_id: str | None) -> bytes:
    """--payload HEX (8 hex digits) or --provider + --content-id -> the 4 payload bytes; ValueError if bad."""
    from voxwarden.mark.keys import payload_from_ids
    from voxwarden.mark.watermark import PAYLOAD_BYTES

    if payload_hex is not None and (provider is not None or content_id is not None):
        raise ValueError("give either --payload or --provider/--content-id, not both")
    if payload_hex is not None:
        h = payload_hex.strip().lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(h)
        except ValueError:
            raise ValueError(f"--payload must be hex digits, got {payload_hex!r}") from None
        if len(raw) != PAYLOAD_BYTES:
            raise ValueError(f"--payload must be {2 * PAYLOAD_BYTES} hex digits (32 bits), got {len(h)}")
        return raw
    if provider is None or content_id is None:
        raise ValueError("give --payload HEX, or both --provider and --content-id")
    return payload_from_ids(provider, content_id)


def embed_cmd(
    in_file: Annotated[Path, typer.Argument(help="Audio to mark (WAV, FLAC, MP3, M4A, Ogg, Opus, ...).")],
    out_file: Annotated[Path, typer.Argument(help="Output: .wav .flac .ogg .mp3 .m4a .aac .opus")],
    payload: Annotated[str | None, typer.Option("--payload", help="32-bit payload, 8 hex digits.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Provider id (+ --content-id).")] = None,
    content_id: Annotated[str | None, typer.Option("--content-id", help="Content id (+ --provider).")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Key file (voxwarden mark keygen).")] = None,
) -> None:
    """Embed the watermark; keeps sample rate and channels, then checks the written file still carries it."""
    from voxwarden.audio.errors import AudioError
    from voxwarden.mark.fileio import WRITE_FORMATS
    from voxwarden.mark.watermark import WatermarkError

    try:
        raw = parse_payload(payload, provider, content_id)
    except ValueError as e:
        err_console.print(f"[red]usage:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    if out_file.suffix.lower() not in WRITE_FORMATS:
        err_console.print(f"[red]usage:[/red] cannot write {out_file.suffix or 'no suffix'}; "
                          f"use one of {', '.join(WRITE_FORMATS)}")
        raise typer.Exit(EXIT_USAGE)
    m = _marker(key)
    try:
        # checks the mark in the written file before it takes out_file's place: a failure leaves nothing
        check = m.embed_file(in_file, out_file, raw, publish_only_if_found=True)
    except (AudioError, WatermarkError, ValueError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    if not check.present or check.payload != raw:
        err_console.print(f"[red]error:[/red] the mark would not be detectable in {out_file} (audio too short "
                          "or silent, or the output codec removes it); nothing was written")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"marked {out_file} payload={raw.hex()}")
    raise typer.Exit(EXIT_OK)


def detect_cmd(
    file: Annotated[Path, typer.Argument(help="Audio file to check.")],
    key: Annotated[Path | None, typer.Option("--key", help="Watermark key file.")] = None,
    fmt: Annotated[OutFormat, typer.Option("--format", help="text or json.")] = OutFormat.text,
) -> None:
    """Look for the watermark; exit 0 present, 1 absent, 2 unreadable.

    JSON: {"present": bool, "payload": hex | null, "confidence": float, "spans": [[start, end], ...]}.
    """
    from voxwarden.audio.errors import AudioError
    from voxwarden.mark.watermark import WatermarkError

    m = _marker(key)
    try:
        r = m.detect_file(file)
    except (AudioError, WatermarkError) as e:
        if fmt == OutFormat.json:
            err = e.to_dict() if isinstance(e, AudioError) else {"type": "watermark_error", "message": str(e)}
            typer.echo(json.dumps({"path": str(file), "error": err}))
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    if fmt == OutFormat.json:
        typer.echo(json.dumps(r.to_dict()))
    elif r.present:
        spans = ", ".join(f"{a:.2f}-{b:.2f}s" for a, b in r.spans)
        typer.echo(f"{file}: watermark present, payload={r.payload.hex() if r.payload else '?'}, "
                   f"confidence={r.confidence:.6f}, spans: {spans}")
    else:
        typer.echo(f"{file}: no watermark (confidence {r.confidence:.2f})")
    raise typer.Exit(EXIT_OK if r.present else EXIT_FLAGGED)


def keygen_cmd(
    out: Annotated[Path, typer.Argument(help="Key file to create (mode 0600; never overwritten).")],
) -> None:
    """Create a new random 32-byte watermark key."""
    from voxwarden.mark.keys import KeyFileError, write_key_file

    try:
        write_key_file(out)
    except KeyFileError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    typer.echo(f"wrote watermark key {out} (keep it secret)")


mark_app.command("embed")(embed_cmd)
mark_app.command("detect")(detect_cmd)
mark_app.command("keygen")(keygen_cmd)
