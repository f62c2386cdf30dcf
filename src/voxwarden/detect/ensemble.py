"""Seed ensembles: several ONNX countermeasures merged into one graph whose output is their mean logit.

One training run of a countermeasure learns features that partly depend on its random seed, so its EER on
a generator it never saw moves with the seed (docs/neural-countermeasure.md, "Seed ensemble"). Averaging the
logits of runs that differ only in their seed keeps what they share. The merged file has the members'
interface, ``waveform [B, N] -> logit [B]``, so the runtime (``OnnxBackend``), the card's windows and its
calibration apply unchanged.

    python -m voxwarden.detect.ensemble OUT_DIR MEMBER_DIR MEMBER_DIR [...] [--protocol P]

Without ``--protocol`` OUT_DIR gets ``model.onnx`` and ``training.json`` (a folder ``--pretrained`` accepts);
with it, OUT_DIR becomes a finished model (card, calibration on the protocol's held-back split), as
``python -m voxwarden.detect.neural P OUT_DIR --pretrained`` makes one. A training-time tool: it needs the
``onnx`` package (the ``[train]`` extra), never the runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxwarden.detect.card import ModelError, sha256_file

MAX_DIFF = 1e-4  # merged graph against the mean of its members, on random input


def _graph_io(model: Any, path: Path) -> tuple[Any, Any]:
    """The single real input (not an initializer) and the single output of a member graph."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    ins = [i for i in g.input if i.name not in inits]
    if len(ins) != 1 or len(g.output) != 1:
        raise ModelError(f"{path}: a member needs one input and one output, has {len(ins)} and {len(g.output)}")
    if len(ins[0].type.tensor_type.shape.dim) != 2:
        raise ModelError(f"{path}: a member's input must be [batch, samples]")
    return ins[0], g.output[0]


def _member_file(member: Path) -> Path:
    member = Path(member)
    path = member / "model.onnx" if member.is_dir() else member
    if not path.is_file():
        raise ModelError(f"{member}: no model.onnx")
    return path


def _check(out: Path, members: Sequence[Path]) -> float:
    """Max |merged - mean of members| on random audio of three lengths (onnxruntime, CPU)."""
    import onnxruntime as ort

    def sess(p: Path) -> Any:
        return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])

    merged = sess(out)
    parts = [sess(p) for p in members]
    rng = np.random.default_rng(1234)
    worst = 0.0
    for n in (8000, 32000, 64000):
        x = (rng.standard_normal((3, n)) * 0.1).astype(np.float32)
        got = merged.run(None, {merged.get_inputs()[0].name: x})[0]
        ref = np.mean([s.run(None, {s.get_inputs()[0].name: x})[0] for s in parts], axis=0)
        worst = max(worst, float(np.max(np.abs(np.asarray(got) - ref))))
    return worst


def merge_onnx(members: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write one ONNX graph at ``out`` that runs every member on the same input and outputs their mean.

    ``members`` are ``model.onnx`` files or folders holding one, with one ``[batch, samples]`` input and one
    output and the same opset. The result is checked against the members' mean on random audio and written
    atomically (a failed merge leaves no file). Returns ``{"sha256", "members": [{"file", "sha256"}],
    "max_abs_diff"}``.
    """
    import onnx
    from onnx import compose, helper

    paths = [_member_file(m) for m in members]
    if len(paths) < 2:
        raise ValueError("an ensemble needs at least two members")
    models = []
    for p in paths:
        try:
            models.append(onnx.load(str(p)))
        except Exception as e:  # onnx raises DecodeError and others for a file that is not a model
            raise ModelError(f"{p}: not a loadable ONNX model ({type(e).__name__}: {e})") from e
    opsets = {tuple(sorted((o.domain, o.version) for o in m.opset_import)) for m in models}
    if len(opsets) != 1:
        raise ModelError(f"members differ in opset: {sorted(opsets)}")
    first_in, first_out = _graph_io(models[0], paths[0])
    nodes, inits, infos, outs = [], [], [], []
    for k, (m, p) in enumerate(zip(models, paths, strict=True)):
        pm = compose.add_prefix(m, prefix=f"m{k}_")
        in_k, out_k = _graph_io(pm, p)  # prefixing keeps the interface, so this checks every member
        nodes.append(helper.make_node("Identity", [first_in.name], [in_k.name], name=f"m{k}_feed"))
        nodes.extend(pm.graph.node)
        inits.extend(pm.graph.initializer)
        infos.extend(pm.graph.value_info)
        outs.append(out_k.name)
    nodes.append(helper.make_node("Mean", outs, [first_out.name], name="ensemble_mean"))
    graph = helper.make_graph(
        nodes, "voxwarden_seed_ensemble", [first_in], [first_out], initializer=inits, value_info=infos
    )
    model = helper.make_model(graph, opset_imports=list(models[0].opset_import),
                              producer_name="voxwarden.detect.ensemble")
    model.ir_version = models[0].ir_version
    onnx.checker.check_model(model)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".ensemble-", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx.save(model, str(tmp))
        diff = _check(tmp, paths)
        if diff > MAX_DIFF:
            raise RuntimeError(f"merged graph differs from its members' mean by {diff:.3g} > {MAX_DIFF}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "sha256": sha256_file(out),
        "members": [{"file": str(p), "sha256": sha256_file(p)} for p in paths],
        "max_abs_diff": diff,
    }


def _member_fields(member: Path) -> dict[str, Any]:
    """What a member folder says about itself: its card's (or training.json's) architecture and training."""
    member = Path(member)
    for name in ("training.json", "card.json"):
        f = member / name
        if member.is_dir() and f.is_file():
            try:
                d = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ModelError(f"{f}: unreadable ({e})") from e
            return {"architecture": d.get("architecture"), "training": d.get("training"),
                    "version": d.get("version")}
    return {}


def ensemble_fields(members: Sequence[Path], out_dir: Path) -> dict[str, Any]:
    """Merge ``members`` into ``out_dir/model.onnx`` and write ``out_dir/training.json``: the fields
    ``build_default(pretrained=out_dir)`` turns into a card (each member's own training recorded)."""
    out_dir = Path(out_dir)
    merged = merge_onnx(members, out_dir / "model.onnx")
    info = [{**m, **_member_fields(src)} for m, src in zip(merged["members"], members, strict=True)]
    archs = [i.get("architecture") or {} for i in info]
    params = [a.get("parameters") for a in archs]
    arch: dict[str, Any] = {
        **archs[0],
        "ensemble": {"members": len(info), "combine": "mean of the members' logits"},
        "parameters": int(sum(params)) if all(isinstance(p, int) for p in params) else None,
    }
    seeds = [(i.get("training") or {}).get("seed") for i in info]
    fields = {
        "kind": "onnx",
        "file": "model.onnx",
        "sha256": merged["sha256"],
        "architecture": arch,
        "training": {
            "seed": seeds,
            "ensemble_members": info,
            "onnx_max_abs_diff": merged["max_abs_diff"],
        },
    }
    (out_dir / "training.json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: merge member models; with ``--protocol``, also calibrate and write the card."""
    p = argparse.ArgumentParser(description="Merge ONNX countermeasures into one mean-logit ensemble.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("members", type=Path, nargs="+", help="model folders (or model.onnx files), two or more")
    p.add_argument("--protocol", type=Path, default=None,
                   help="calibrate on this protocol's held-back split and write card.json (as the default recipe)")
    p.add_argument("--dev-protocol", type=Path, default=None,
                   help="validation only: report this protocol's EER in the card after everything is fitted")
    a = p.parse_args(argv)
    target = (a.out_dir / "model.onnx").resolve()
    if any(target == (Path(m) / "model.onnx" if Path(m).is_dir() else Path(m)).resolve() for m in a.members):
        print("error: OUT_DIR must not hold a member's model.onnx (it would be overwritten)", file=sys.stderr)
        return 2
    try:
        if a.protocol is None:
            fields = ensemble_fields(a.members, a.out_dir)
            print(json.dumps({"sha256": fields["sha256"], "members": len(a.members)}))
            return 0
        from voxwarden.detect.neural import build_default

        with tempfile.TemporaryDirectory() as td:
            ensemble_fields(a.members, Path(td))
            cmd = "python -m voxwarden.detect.ensemble " + " ".join(
                [str(a.out_dir), *map(str, a.members), "--protocol", str(a.protocol)])
            card = build_default(a.protocol, a.out_dir, pretrained=Path(td), dev_protocol=a.dev_protocol,
                                 command=cmd)
        print(json.dumps({"sha256": card["sha256"], "threshold": card["threshold"],
                          "heldout_eer": card["metrics"]["heldout_eer"].get("overall")}))
        return 0
    except (ModelError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
