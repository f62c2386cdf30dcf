"""Per-generator digests of a built corpus: which part of a build differs between two machines.

    python recipes/corpus/digest.py CORPUS_DIR [--out FILE.json] [--against FILE.json]

A build is deterministic on one machine but not across machines (docs/corpus.md, "Across machines"). To find
where two builds part, each machine writes this file and the two are compared. For every `system` of
CORPUS_DIR/protocol-full.tsv (every clip generated, before balancing) it records the number of clips, `rows`:
an md5 over that system's protocol rows (did the random draws differ?) and `audio`: an md5 over the sorted
`file md5(audio bytes)` lines (did the samples differ?). It also records the md5 of protocol-full.tsv and
protocol.tsv. With --against, it prints the systems whose digests differ from a saved file and exits 1 if
any does. Missing or unreadable audio is hashed as such, never skipped; a corpus without protocol-full.tsv
is a clear error (exit 2).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(corpus: Path) -> dict[str, Any]:
    """The digests of one built corpus (see the module docstring)."""
    full = corpus / "protocol-full.tsv"
    if not full.is_file():
        raise FileNotFoundError(f"{full} not found: not a built corpus")
    with full.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or not {"file", "system"} <= set(reader.fieldnames):
            raise ValueError(f"{full}: needs the columns file and system")
        cols = list(reader.fieldnames)
        rows = list(reader)
    by_system: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_system.setdefault(row["system"], []).append(row)
    systems: dict[str, Any] = {}
    for name in sorted(by_system):
        group = sorted(by_system[name], key=lambda r: r["file"])
        row_lines = ["\t".join(r.get(c) or "" for c in cols) for r in group]
        audio_lines = []
        for r in group:
            path = corpus / "audio" / r["file"]
            try:
                audio_lines.append(f"{r['file']} {_md5_file(path)}")
            except OSError as e:
                audio_lines.append(f"{r['file']} unreadable:{type(e).__name__}")
        systems[name] = {
            "clips": len(group),
            "rows": hashlib.md5("\n".join(row_lines).encode()).hexdigest(),
            "audio": hashlib.md5("\n".join(audio_lines).encode()).hexdigest(),
        }
    proto = corpus / "protocol.tsv"
    return {
        "protocol_full_md5": _md5_file(full),
        "protocol_md5": _md5_file(proto) if proto.is_file() else None,
        "clips": len(rows),
        "systems": systems,
    }


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Human-readable lines for each digest that differs between two `digest` results."""
    out = []
    for key in ("protocol_full_md5", "protocol_md5", "clips"):
        if mine.get(key) != theirs.get(key):
            out.append(f"{key}: {theirs.get(key)} -> {mine.get(key)}")
    a, b = mine.get("systems", {}), theirs.get("systems", {})
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            out.append(f"{name}: only in {'this build' if name in a else 'the saved one'}")
            continue
        parts = [k for k in ("clips", "rows", "audio") if a[name].get(k) != b[name].get(k)]
        if parts:
            out.append(f"{name}: differs in {', '.join(parts)}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--out", type=Path, default=None, help="write the digests here (JSON)")
    p.add_argument("--against", type=Path, default=None, help="a saved digest file to compare with")
    args = p.parse_args(argv)
    try:
        res = digest(args.corpus)
        saved = json.loads(args.against.read_text()) if args.against else None
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=1, sort_keys=True) + "\n"
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    else:
        print(text, end="")
    if saved is None:
        return 0
    diff = differences(res, saved)
    for line in diff:
        print(line)
    print(f"{len(diff)} difference(s) against {args.against}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
