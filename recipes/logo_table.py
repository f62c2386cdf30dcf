"""Print the leave-one-generator-out table from the JSON files of ``recipes/gpu_logo.sh``.

    python recipes/logo_table.py OUT/logo-recipe-*.json [--out table.json]

One row per left-out system: the fold's EER on it (trained without it) and the shipped default's EER on
the same trials (the default may have trained on that system: it is a reference, not a rival), then the
mean over systems. A system left out together with its family (``gpu_logo.sh`` fold ``A+B``) says so in
its row: that training lacked the whole family, which is stricter than leaving one generator out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def table(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """{system: {"fold": EER trained without it, "default": shipped default on the same trials,
    "with": the other systems that fold left out (empty for a one-generator fold)}}."""
    rows: dict[str, dict[str, Any]] = {}
    for p in paths:
        res = json.loads(Path(p).read_text(encoding="utf-8"))
        base = res.get("baseline_left_out_eer", {})
        # files written before "logo_group" existed say it in their note
        group = bool(res.get("logo_group", str(res.get("logo_note", "")).startswith("leave-group-out")))
        names = sorted(res["logo_eer"])
        for name, v in res["logo_eer"].items():
            rows[name] = {"fold": float(v), "default": float(base[name]) if name in base else None,
                          "with": [n for n in names if n != name] if group else []}
    return dict(sorted(rows.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    try:
        rows = table(a.files)
    except (OSError, ValueError, KeyError, TypeError) as e:  # missing file, bad JSON, not a fold file
        print(f"error: cannot read the fold files: {e!r}", file=sys.stderr)
        return 2
    if not rows:
        print("no folds found", file=sys.stderr)
        return 1
    print("| left-out system | EER, fold trained without it | shipped default (trained on it), same trials |")
    print("| --- | ---: | ---: |")
    for name, r in rows.items():
        d = "-" if r["default"] is None else f"{r['default']:.1%}"
        label = f"{name} (left out with {', '.join(r['with'])})" if r["with"] else name
        print(f"| {label} | {r['fold']:.1%} | {d} |")
    folds = [r["fold"] for r in rows.values()]
    print(f"| **mean of {len(folds)} systems** | **{sum(folds) / len(folds):.1%}** | |")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
