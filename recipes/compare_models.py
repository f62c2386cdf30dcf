"""Compare two countermeasure models on a corpus's held-back clips, with a paired bootstrap per system.

    python recipes/compare_models.py CORPUS/protocol.tsv MODEL_A MODEL_B [--out cmp.json] [--resamples 2000]
        [--exclude-system hifigan-universal]

MODEL_A / MODEL_B are folders with card.json + model.onnx (e.g. src/voxwarden/models/default and a
candidate). Both are scored the way the ``Detector`` scores files (VAD, card windows, aggregation) on the
`val` split (or the seeded speaker split the trainer would use), on the clips both could score. For the
whole split and for each spoof system (its clips against every held-back bona fide clip) it prints each
model's EER and the 95 % bootstrap interval of B − A (``voxwarden.detect.metrics.paired_bootstrap_eer``).
`--exclude-system S` (repeatable) adds a group "overall without S": every spoof clip but S's, for a rule
that must not count a system only one model was trained on. This is the selection rule's measuring tool
(docs/neural-countermeasure.md); never point it at shared/data/dev to choose anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from voxwarden.detect.card import ModelError
from voxwarden.detect.metrics import paired_bootstrap_eer
from voxwarden.detect.neural import _detector_scorer, read_protocol, train_heldout


def compare(protocol: Path, model_a: Path, model_b: Path, *, resamples: int = 2000, seed: int = 0,
            holdout: float = 0.2, exclude: tuple[str, ...] = (), all_rows: bool = False) -> dict:
    """Per-system EER of both models and the bootstrap interval of their difference (B − A).

    `all_rows` scores every row of the protocol (a set neither model trained on, e.g. an unseen generator),
    instead of the held-back split."""
    items = read_protocol(protocol)
    if all_rows:
        ho, split_how = list(range(len(items))), "every row of the protocol"
    else:
        _, ho, split_how = train_heldout(items, holdout, seed)
    held = [items[i] for i in ho]
    scorers = [_detector_scorer(Path(m))[0] for m in (model_a, model_b)]
    rows: list[tuple[int, float, float]] = []
    for k, it in enumerate(held):
        try:
            rows.append((k, scorers[0](it.audio), scorers[1](it.audio)))
        except Exception:  # noqa: BLE001 - too little speech / too short for either model: skip the clip
            continue
    idx = np.array([r[0] for r in rows], dtype=int)
    sa, sb = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    labels = np.array([held[k].label for k in idx])
    systems = np.array([held[k].system for k in idx])
    out: dict = {"protocol": str(protocol), "model_a": str(model_a), "model_b": str(model_b),
                 "split": split_how, "scored": int(len(idx)), "unscoreable": len(held) - len(idx),
                 "resamples": resamples, "systems": {}}
    bona = labels == 0
    if not bona.any() or bona.all():
        raise ValueError(f"{protocol}: the held-back clips both models could score lack bona fide or spoof "
                         f"({int(bona.sum())} bona fide of {len(idx)})")
    groups = {"overall": labels == 1}
    if exclude:
        groups[f"overall without {','.join(exclude)}"] = (labels == 1) & ~np.isin(systems, list(exclude))
    groups.update({s: (labels == 1) & (systems == s) for s in sorted(set(systems[labels == 1]))})
    for name, spoof in groups.items():
        d = paired_bootstrap_eer(sa[bona], sa[spoof], sb[bona], sb[spoof], resamples=resamples, seed=seed)
        out["systems"][name] = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(d).items()},
                                "n_bonafide": int(bona.sum()), "n_spoof": int(spoof.sum())}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("protocol", type=Path)
    p.add_argument("model_a", type=Path)
    p.add_argument("model_b", type=Path)
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--exclude-system", action="append", default=[], metavar="SYSTEM")
    p.add_argument("--all-rows", action="store_true", help="score every row (a set neither model trained on)")
    a = p.parse_args(argv)
    try:
        res = compare(a.protocol, a.model_a, a.model_b, resamples=a.resamples, seed=a.seed,
                      exclude=tuple(a.exclude_system), all_rows=a.all_rows)
    except (OSError, ValueError, ModelError) as e:  # missing/unreadable protocol or model, nothing scoreable
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{res['scored']} clips scored ({res['unscoreable']} unscoreable), {res['split']}")
    print(f"{'system':<18} {'A':>7} {'B':>7} {'B-A':>7}  95 % interval      n(bona/spoof)")
    for name, r in res["systems"].items():
        print(f"{name:<18} {r['eer_a']:7.1%} {r['eer_b']:7.1%} {r['diff']:+7.1%}  "
              f"[{r['low']:+.1%}, {r['high']:+.1%}]  {r['n_bonafide']}/{r['n_spoof']}")
    if a.out:
        a.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
