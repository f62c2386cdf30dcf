"""Move a training corpus to a GPU machine in pieces, and check it on arrival.

The device tool carries at most 64 MiB per call (tracked files included), and folders it carries inside
the repository are wiped between calls. So a corpus of ~110 MB of FLAC (corpus-v4) travels as a few tar
parts. Each call carries one part and unpacks it into a folder outside the repository (/tmp there), which
lasts while the machine stays warm. Session 4 did this by hand. This script makes it one command each way.

    python recipes/corpus_parts.py pack work-data/corpus-v4 parts/ --max-mb 30
    # on the device, once per carried part (parts.json travels with each):
    python recipes/corpus_parts.py unpack parts/parts.json --dest /tmp/corpus-v4
    # -> "3 of 4 parts present in /tmp/corpus-v4; missing: part-003.tar" until all have arrived (exit 3)

Parts are plain tar (FLAC is already compressed). `parts.json` lists every part with its sha256 and
members. A part that is corrupt or whose digest differs is rejected and nothing of it is extracted. Members
are extracted with tarfile's "data" filter, so no absolute paths, no `..`, no links out of the destination.
Unpacking is idempotent: a part already unpacked (a marker file in the destination) is skipped. Exit codes:
0 done (all parts present), 3 some parts not here yet, 2 bad input (missing or corrupt part, bad manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path

MANIFEST = "parts.json"
DONE_DIR = ".parts-unpacked"


class PartsError(Exception):
    """Bad input: a missing corpus, a corrupt or altered part, an unreadable manifest."""


def _sha256(path: Path) -> str:
    # not voxwarden's own helper: this script runs on the device before voxwarden is importable (stdlib only)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pack(corpus: Path, out: Path, max_bytes: int) -> dict:
    """Split `corpus` (protocol.tsv, manifest.json, audio/...) into tar parts of at most `max_bytes` each.

    Files go in sorted order, so the same corpus gives the same parts. A single file larger than
    `max_bytes` gets a part of its own (reported in the manifest as `oversize`).
    """
    if not (corpus / "protocol.tsv").is_file():
        raise PartsError(f"{corpus}: no protocol.tsv (not a corpus built by voxwarden corpus build)")
    if max_bytes < 1 << 20:
        raise PartsError("--max-mb must be at least 1")
    if out.resolve().is_relative_to(corpus.resolve()):
        raise PartsError(f"{out}: the parts folder must lie outside the corpus (it would pack itself)")
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and not p.is_symlink())
    out.mkdir(parents=True, exist_ok=True)
    groups: list[list[Path]] = [[]]
    size = 0
    for f in files:
        n = f.stat().st_size + 1024  # tar header and padding
        if groups[-1] and size + n > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += n
    parts = []
    for i, group in enumerate(groups):
        name = f"part-{i:03d}.tar"
        tmp = out / (name + ".tmp")
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for f in group:
                info = tar.gettarinfo(str(f), arcname=f.relative_to(corpus).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0  # the same corpus gives byte-identical parts
                with open(f, "rb") as fh:
                    tar.addfile(info, fh)
        os.replace(tmp, out / name)
        part_bytes = (out / name).stat().st_size
        parts.append({"file": name, "sha256": _sha256(out / name), "bytes": part_bytes,
                      "members": [f.relative_to(corpus).as_posix() for f in group],
                      "oversize": part_bytes > max_bytes})
    manifest = {"corpus": corpus.name, "files": len(files), "parts": parts}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)
    return manifest


def unpack(manifest_path: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Extract every part of `manifest_path` that is present beside it into `dest`.

    Returns (unpacked or already unpacked, missing). A part whose digest differs from the manifest, or
    that tar cannot read, raises PartsError before anything of it is extracted.
    """
    try:
        manifest = json.loads(manifest_path.read_text())
        parts = manifest["parts"]
        if not isinstance(parts, list):
            raise TypeError("parts is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PartsError(f"{manifest_path}: not a parts manifest ({e})") from e
    dest.mkdir(parents=True, exist_ok=True)
    done_dir = dest / DONE_DIR
    done_dir.mkdir(exist_ok=True)
    have: list[str] = []
    missing: list[str] = []
    for part in parts:
        name = str(part.get("file", ""))
        if not name or "/" in name or name.startswith("."):
            raise PartsError(f"{manifest_path}: bad part name {name!r}")
        marker = done_dir / (name + ".done")
        if marker.is_file() and marker.read_text() == part.get("sha256"):
            have.append(name)
            continue
        path = manifest_path.parent / name
        if not path.is_file():
            missing.append(name)
            continue
        if _sha256(path) != part.get("sha256"):
            raise PartsError(f"{path}: sha256 differs from {MANIFEST} (truncated or altered in transit)")
        try:
            with tarfile.open(path, "r:") as tar:
                members = tar.getmembers()
                names = sorted(m.name for m in members)
                if names != sorted(part.get("members", [])):
                    raise PartsError(f"{path}: members differ from {MANIFEST}")
                tar.extractall(dest, members=members, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise PartsError(f"{path}: cannot unpack ({e})") from e
        marker.write_text(str(part["sha256"]))
        have.append(name)
    return have, missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="split a corpus into tar parts")
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--max-mb", type=float, default=30.0, help="largest part in MiB (default 30)")
    u = sub.add_parser("unpack", help="check and extract the parts present beside parts.json")
    u.add_argument("manifest", type=Path)
    u.add_argument("--dest", type=Path, required=True)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "pack":
            m = pack(a.corpus, a.out, int(a.max_mb * (1 << 20)))
            sizes = ", ".join(f"{p['file']} {p['bytes'] / (1 << 20):.1f} MiB" for p in m["parts"])
            print(f"{m['files']} files in {len(m['parts'])} parts: {sizes}")
            return 0
        have, missing = unpack(a.manifest, a.dest)
    except PartsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = len(have) + len(missing)
    if missing:
        print(f"{len(have)} of {total} parts present in {a.dest}; missing: {', '.join(missing)}")
        return 3
    print(f"all {total} parts unpacked in {a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
