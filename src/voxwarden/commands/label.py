"""`voxwarden label write|read|keygen` (GB 45438-2025 metadata label) and `voxwarden mark notice`.

Exit codes: 0 ok; 1 (read) a label whose signature fails or is malformed; 2 some inputs failed; 3 usage
or key error.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_OK, EXIT_USAGE, err_console, exit_code

label_app = typer.Typer(help="Write, read and sign GB 45438-2025 AIGC metadata labels.", no_args_is_help=True)


class Lang(StrEnum):
    en = "en"
    zh = "zh"


class Where(StrEnum):
    start = "start"
    end = "end"
    both = "both"


class Style(StrEnum):
    voice = "voice"
    rhythm = "rhythm"


class Role(StrEnum):
    producer = "producer"
    propagator = "propagator"


class Alg(StrEnum):
    ed25519 = "ed25519"
    hmac = "hmac-sha256"


class ReadFormat(StrEnum):
    text = "text"
    json = "json"


def _load_key(path: Path | None):  # -> LabelKey | None
    from voxwarden.mark.metadata import LabelKey, LabelKeyError

    if path is None:
        return None
    try:
        return LabelKey.from_file(path)
    except LabelKeyError as e:
        err_console.print(f"[red]key error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e


@label_app.command("write")
def write_cmd(
    file: Annotated[Path, typer.Argument(help="WAV, MP3, FLAC, Ogg Vorbis/Opus or M4A (edited in place).")],
    producer: Annotated[str, typer.Option("--producer", help="ContentProducer: provider name/code.")] = "",
    produce_id: Annotated[str, typer.Option("--produce-id", help="ProduceID: producer's content id.")] = "",
    label: Annotated[str, typer.Option("--label", help="Label: 1 AI, 2 possibly AI, 3 suspected AI.")] = "1",
    propagator: Annotated[str, typer.Option("--propagator", help="ContentPropagator: platform name.")] = "",
    propagate_id: Annotated[str, typer.Option("--propagate-id", help="PropagateID: platform's id.")] = "",
    key: Annotated[Path | None, typer.Option("--key", help="Private key file to sign with.")] = None,
    role: Annotated[Role, typer.Option(
        "--role", help="Sign as producer (ReservedCode1) or propagator (ReservedCode2, keeps the producer's "
                       "fields).")] = Role.producer,
) -> None:
    """Write (and with --key sign) the AIGC label. As propagator, existing producer fields are kept."""
    from voxwarden.audio.errors import AudioError
    from voxwarden.commands._common import EXIT_FAILED
    from voxwarden.mark.metadata import AigcLabel, LabelKeyError, read_label, write_label

    if label not in ("1", "2", "3"):
        err_console.print("[red]error:[/red] --label must be 1, 2 or 3 (GB 45438-2025)")
        raise typer.Exit(EXIT_USAGE)
    k = _load_key(key)
    try:
        lab = AigcLabel(label=label, content_producer=producer, produce_id=produce_id,
                        content_propagator=propagator, propagate_id=propagate_id)
        if role is Role.propagator:
            old = read_label(file)
            if old.label is not None:
                lab = old.label
                lab.content_propagator = propagator or lab.content_propagator
                lab.propagate_id = propagate_id or lab.propagate_id
        write_label(file, lab, key=k, role=role.value)
    except AudioError as e:
        err_console.print(f"[red]{e.code}:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    except (LabelKeyError, ValueError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    how = f" (signed as {role.value}, key {k.key_id})" if k else " (unsigned)"
    err_console.print(f"labelled {file}{how}")
    raise typer.Exit(EXIT_OK)


@label_app.command("read")
def read_cmd(
    files: Annotated[list[Path], typer.Argument(help="Files to read.")],
    key: Annotated[list[Path] | None, typer.Option("--key", help="Trusted key file (repeatable).")] = None,
    fmt: Annotated[ReadFormat, typer.Option("--format", "-f", help="text or json (one object a line).")]
    = ReadFormat.text,
) -> None:
    """Read labels and check their signatures against the audio."""
    from voxwarden.audio.errors import AudioError
    from voxwarden.mark.metadata import LabelKey, LabelKeyError, read_label

    try:
        keys = [LabelKey.from_file(k) for k in key or []]
    except LabelKeyError as e:
        err_console.print(f"[red]key error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    bad = failed = False
    for f in files:
        try:
            r = read_label(f, key=keys)
        except AudioError as e:
            failed = True
            if fmt is ReadFormat.json:
                typer.echo(json.dumps({"path": str(f), "error": e.to_dict()}, ensure_ascii=False))
            else:
                typer.echo(f"{f}: error {e.code}: {e}")
            continue
        bad = bad or r.signature_valid is False
        if fmt is ReadFormat.json:
            typer.echo(json.dumps({"path": str(f), **r.to_dict()}, ensure_ascii=False))
        else:
            state = {True: "VALID", False: "INVALID", None: "unverified"}[r.signature_valid]
            head = "label " + state if r.label else "MALFORMED label" if r.malformed else "no label"
            typer.echo(f"{f}: {head}")
            if r.label:
                for k_, v in r.label.to_dict().items():
                    typer.echo(f"  {k_}: {v}")
            typer.echo(f"  reason: {r.reason}")
    raise typer.Exit(exit_code(bad, failed))


@label_app.command("keygen")
def keygen_cmd(
    out: Annotated[Path, typer.Argument(help="Private key file (mode 0600); Ed25519 also writes OUT.pub.")],
    alg: Annotated[Alg, typer.Option("--alg", help="ed25519 (public verify) or hmac-sha256.")] = Alg.ed25519,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Create a label signing key. Give OUT.pub (Ed25519) to platforms that verify your labels."""
    from voxwarden.mark.metadata import LabelKey

    if out.exists() and not force:
        err_console.print(f"[red]error:[/red] {out} exists (use --force)")
        raise typer.Exit(EXIT_USAGE)
    k = LabelKey.generate(alg.value)
    try:
        k.save(out)
        if k.alg == "ed25519":
            k.save(out.with_name(out.name + ".pub"), private=False)
    except OSError as e:
        err_console.print(f"[red]error:[/red] cannot write key: {e}")
        raise typer.Exit(EXIT_USAGE) from e
    typer.echo(f"key id {k.key_id} written to {out}" + (f" and {out}.pub" if k.alg == "ed25519" else ""))


def notice_cmd(
    in_path: Annotated[Path, typer.Argument(metavar="IN", help="Input audio file.")],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="Output (.wav .flac .ogg .opus .mp3).")],
    lang: Annotated[Lang, typer.Option("--lang", help="Notice language.")] = Lang.en,
    where: Annotated[Where, typer.Option("--where", help="Notice at start, end or both.")] = Where.start,
    style: Annotated[Style, typer.Option("--style", help="Spoken notice or tone rhythm.")] = Style.voice,
) -> None:
    """Add an audible AI notice ("This audio was generated by AI" / 本音频由人工智能生成) to a file.

    Exit codes: 0 written, 2 input could not be read or output not written, 3 usage error.
    """
    from voxwarden.audio.errors import AudioError
    from voxwarden.commands._common import EXIT_FAILED
    from voxwarden.mark.notice import NoticeError, add_notice_file

    try:
        r = add_notice_file(in_path, out_path, lang=lang.value, where=where.value, style=style.value)
    except AudioError as e:
        err_console.print(f"[red]{e.code}:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    except NoticeError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    err_console.print(f"wrote {r.path}: {r.duration_in:.2f} s → {r.duration_out:.2f} s, {r.sample_rate} Hz, "
                      f"{r.channels} ch ({style.value} notice, {lang.value}, {where.value})")
