"""Seed ensembles on leave-one-generator-out folds (the session-15 rule, docs/neural-countermeasure.md).

    python recipes/ensemble_logo.py CORPUS_DIR OUT.json --folds OUT/models-s0 OUT/models-s1 [--systems kokoro,world]

Each FOLDS folder holds, per left-out system, the fold model one seed trained without it (`KEEP_MODELS=1
recipes/gpu_logo.sh ... TAG` keeps them in OUT/models-TAG/SYSTEM/). For every system the members are scored
alone and merged into one mean-logit graph (`voxwarden.detect.ensemble`), all by `left_out_eer` on the same
trials as `gpu_logo.sh` (every clip of the system against the `val` bona fide clips, raw 4 s / 2 s windows). The
baseline of a system is its members' mean EER (what one run of the recipe is expected to reach). Nothing is
fitted on these trials. OUT.json gets each system's member EERs, baseline and ensemble EER; the script prints
the table and the rule's verdict: the ensemble qualifies only if its mean is at least 2 points below the
baselines' mean and no system's ensemble EER is above its baseline.
Never point this at shared/data/dev. Exit codes: 0 done, 2 bad input (no protocol, a fold missing or unloadable,
a system not in the protocol).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

MARGIN = 0.02  # the rule: the ensemble's mean at least 2 points below the members' mean


def evaluate(corpus: Path, folds: list[Path], systems: list[str]) -> dict[str, dict[str, Any]]:
    """{system: {"members": [EER per seed folder], "baseline": their mean, "ensemble": merged EER}}."""
    from voxwarden.detect.ensemble import merge_onnx
    from voxwarden.detect.neural import left_out_eer, read_protocol, train_heldout
    from voxwarden.detect.protocol import fold_dir

    protocol = corpus / "protocol.tsv"
    if not protocol.is_file():
        raise ValueError(f"{corpus}: no protocol.tsv")
    if len(folds) < 2:
        raise ValueError("an ensemble needs at least two seed folders")
    members = {s: [fold_dir(f, s) for f in folds] for s in systems}
    for s, dirs in members.items():
        for d in dirs:
            if not (d / "model.onnx").is_file():
                raise ValueError(f"{d}: no fold model for {s}")
    items = read_protocol(protocol)
    known = {it.system for it in items if it.label == 1}
    unknown = sorted(set(systems) - known)
    if unknown:
        raise ValueError(f"systems not in {protocol}: {unknown}")
    _, ho, _ = train_heldout(items, 0.2, 0)
    out: dict[str, dict[str, Any]] = {}
    for s in systems:
        eers = [left_out_eer(d, items, ho, [s])[s] for d in members[s]]
        with tempfile.TemporaryDirectory() as td:
            merge_onnx(members[s], Path(td) / "model.onnx")
            ens = left_out_eer(Path(td), items, ho, [s])[s]
        out[s] = {"members": eers, "baseline": round(sum(eers) / len(eers), 4), "ensemble": ens,
                  "folds": [str(d) for d in members[s]]}
        print(f"{s}: members {', '.join(f'{e:.1%}' for e in eers)}, ensemble {ens:.1%}", file=sys.stderr,
              flush=True)
    return out


def verdict(rows: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    """The rule: (i) mean ensemble EER ≤ mean baseline − 2 points; (ii) no system above its baseline."""
    base = sum(r["baseline"] for r in rows.values()) / len(rows)
    ens = sum(r["ensemble"] for r in rows.values()) / len(rows)
    worse = [s for s, r in rows.items() if r["ensemble"] > r["baseline"]]
    ok_i, ok_ii = ens <= base - MARGIN + 1e-12, not worse
    ii = "no system above its baseline: holds" if ok_ii else f"above its baseline: {', '.join(worse)}: fails"
    text = f"(i) mean {ens:.1%} against {base:.1%}: {'holds' if ok_i else 'fails'}; (ii) {ii}"
    return ok_i and ok_ii, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--folds", type=Path, nargs="+", required=True, help="one kept-folds folder per seed")
    p.add_argument("--systems", default="kokoro,world")
    a = p.parse_args(argv)
    systems = [s for s in a.systems.split(",") if s]
    try:
        rows = evaluate(a.corpus, a.folds, systems)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - an unloadable fold model (ModelError) and the like
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    ok, text = verdict(rows)
    print("| left-out system | " + " | ".join(f"seed folder {i + 1}" for i in range(len(a.folds)))
          + " | baseline (members' mean) | ensemble |")
    print("| --- |" + " ---: |" * (len(a.folds) + 2))
    for s, r in rows.items():
        print(f"| {s} | " + " | ".join(f"{e:.1%}" for e in r["members"])
              + f" | {r['baseline']:.1%} | {r['ensemble']:.1%} |")
    print(f"rule: {text} -> {'qualifies' if ok else 'does not qualify'}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"systems": rows, "qualifies": ok, "verdict": text}, indent=2) + "\n",
                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
