"""`voxwarden verify`: is each file labelled as AI, honestly labelled, or unlabelled but suspected?"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_USAGE, check_output, err_console, exit_code, output_stream


class VerifyFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"


_STYLE = {"labelled-ai": "cyan", "label-mismatch": "bold red", "unlabelled-suspected-ai": "bold yellow",
          "no-evidence": "green", "error": "red"}


def verify_cmd(
    files: Annotated[list[str], typer.Argument(help="Audio files or folders to verify.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    fmt: Annotated[VerifyFormat, typer.Option("--format", "-f", help="Output format.")] = VerifyFormat.table,
    key: Annotated[list[Path] | None, typer.Option(
        "--key", help="Trusted label key file (Ed25519 public/private PEM or HMAC); repeatable.")] = None,
    watermark_key: Annotated[Path | None, typer.Option(
        "--watermark-key", help="Watermark key file (default: the public demo key).")] = None,
    no_detector: Annotated[bool, typer.Option("--no-detector", help="Skip the detector.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write results here (default: stdout).")]
    = None,
) -> None:
    """Check labels, watermark and (when neither is found) the detector, one verdict per file.

    Verdicts: labelled-ai, label-mismatch, unlabelled-suspected-ai, no-evidence, error.
    Exit codes: 0 nothing flagged, 1 something flagged (unlabelled-suspected-ai or label-mismatch),
    2 some inputs failed (2 wins over 1), 3 usage or key error.
    """
    from voxwarden.audio import iter_inputs
    from voxwarden.mark.metadata import LabelKey, LabelKeyError
    from voxwarden.mark.verify import Verdict, Verifier

    try:
        keys = [LabelKey.from_file(k) for k in key or []]
    except LabelKeyError as e:
        err_console.print(f"[red]key error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    if watermark_key is not None and not watermark_key.is_file():
        err_console.print(f"[red]key error:[/red] {watermark_key}: no such watermark key file")
        raise typer.Exit(EXIT_USAGE)
    check_output(out)
    verifier = Verifier(key=keys, watermark_key=watermark_key, use_detector=not no_detector)
    verdicts: list[Verdict] = []
    for item in iter_inputs(files, recursive=recursive):
        if item.error is not None:
            verdicts.append(Verdict(item.path, "error", [str(item.error)], error=item.error.to_dict()))
        else:
            verdicts.append(verifier.verify(item.path))
    with output_stream(out) as stream:
        if fmt is VerifyFormat.jsonl:
            for v in verdicts:
                stream.write(json.dumps(v.to_dict(), ensure_ascii=False) + "\n")
        else:
            _print_table(verdicts, stream)
    flagged = any(v.flagged for v in verdicts)
    failed = any(v.error for v in verdicts)
    if fmt is not VerifyFormat.table or out is not None:
        err_console.print(f"{len(verdicts)} inputs: {sum(v.flagged for v in verdicts)} flagged, "
                          f"{sum(bool(v.error) for v in verdicts)} failed")
    raise typer.Exit(exit_code(flagged, failed))


def _print_table(verdicts: list, stream) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="voxwarden verify")
    table.add_column("file", overflow="fold")
    table.add_column("verdict")
    table.add_column("label sig")
    table.add_column("watermark")
    table.add_column("P(synthetic)", justify="right")
    table.add_column("why", overflow="fold")
    for v in verdicts:
        sig = {True: "valid", False: "INVALID", None: "unverified" if v.label else "-"}[v.signature_valid]
        wm = "-" if v.watermark is None else ("present" if v.watermark.get("present") else "none")
        p = (v.detector or {}).get("probability")
        style = _STYLE.get(v.verdict, "white")
        table.add_row(escape(v.path), f"[{style}]{v.verdict}[/{style}]", sig, wm,
                      f"{p:.3f}" if isinstance(p, float) else "-", escape("; ".join(v.reasons)))
    n_flag = sum(v.flagged for v in verdicts)
    n_fail = sum(bool(v.error) for v in verdicts)
    table.caption = f"{len(verdicts)} inputs · {n_flag} flagged · {n_fail} failed"
    Console(file=stream, width=max(120, Console().width), markup=True).print(table)
