"""Training driver: speaker-grouped hold-out, a toy corpus trained end to end into a loadable model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import istft, stft

from voxwarden.detect import train as train_mod
from voxwarden.detect.gmm import GmmBackend
from voxwarden.detect.metrics import eer
from voxwarden.detect.protocol import ProtocolRow
from voxwarden.detect.train import TrainError, split_holdout, train

SR = 16000


def _vocode(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crude phase vocoder: keep the STFT magnitude, draw random phases, overlap-add back."""
    _, _, z = stft(x, SR, nperseg=512, noverlap=384)
    spec = np.abs(z) * np.exp(2j * np.pi * rng.random(z.shape))
    _, y = istft(spec, SR, nperseg=512, noverlap=384)
    y = y[: len(x)]
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call me back when you get this message",
    "we will meet at the station at seven tonight",
    "my account number has changed since last week",
]
VOICES = ["en+m1", "en+m3", "en+m5", "en+f2", "en+f4", "en-us+m2", "en-us+f3", "en-gb+m4"]


def _speak(text: str, voice: str, pitch: int, out: Path) -> np.ndarray:
    from scipy.signal import resample_poly

    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "165", "-w", str(out), text],
                   check=True, capture_output=True, timeout=30)
    x, sr = sf.read(out, dtype="float32")
    if sr != SR:
        x = resample_poly(x, SR, sr).astype(np.float32)
    return x


def _corpus(tmp_path: Path, n_speakers: int = 8, per_speaker: int = 3) -> tuple[Path, Path]:
    """Toy corpus: 'bona fide' = espeak-ng voices (stand-ins, not human), 'spoof' = their Griffin-Lim copy."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    rng = np.random.default_rng(7)
    audio = tmp_path / "audio"
    audio.mkdir()
    lines = ["file\tlabel\tsystem\tspeaker"]
    for s in range(n_speakers):
        for k in range(per_speaker):
            text = SENTENCES[(s + k) % len(SENTENCES)]
            x = _speak(text, VOICES[s % len(VOICES)], 30 + 5 * s, tmp_path / "t.wav")
            sf.write(audio / f"s{s}_{k}_b.flac", x, SR)
            sf.write(audio / f"s{s}_{k}_v.flac", _vocode(x, rng), SR)
            lines.append(f"s{s}_{k}_b.flac\tbonafide\tbonafide\tspk{s}")
            lines.append(f"s{s}_{k}_v.flac\tspoof\tgriffinlim\tspk{s}")
    proto = tmp_path / "protocol.tsv"
    proto.write_text("\n".join(lines) + "\n")
    return proto, audio


def test_split_holdout_groups_speakers_and_keeps_labels() -> None:
    rows = [ProtocolRow(f"{s}_{k}.flac", lab, "x", speaker=f"spk{s}")
            for s in range(10) for k, lab in enumerate(["bonafide", "spoof", "spoof"])]
    tr, ho = split_holdout(rows, 0.2, seed=1)
    assert sorted(tr + ho) == list(range(len(rows)))
    assert {rows[i].speaker for i in tr}.isdisjoint({rows[i].speaker for i in ho})
    assert {rows[i].label for i in ho} == {"bonafide", "spoof"}
    assert 0.15 <= len(ho) / len(rows) <= 0.3
    assert split_holdout(rows, 0.2, seed=1) == (tr, ho)  # deterministic
    with pytest.raises(ValueError):
        split_holdout(rows, 1.5)
    one_speaker = [ProtocolRow("a", "bonafide", "b", speaker="x"),
                   ProtocolRow("b", "spoof", "s", speaker="x")]
    with pytest.raises(TrainError):
        split_holdout(one_speaker, 0.5)


def test_train_toy_corpus_end_to_end(tmp_path: Path) -> None:
    proto, audio = _corpus(tmp_path)
    # a corrupt file, a missing file and a name escaping the audio dir are skipped, not fatal
    (audio / "bad.flac").write_bytes(b"fLaC this is not audio")
    with open(proto, "a") as f:
        f.write("bad.flac\tbonafide\tbonafide\tspk0\nmissing.flac\tspoof\tgriffinlim\tspk1\n"
                "../../etc/passwd\tspoof\tgriffinlim\tspk2\n")
    stages: list[tuple[str, float]] = []
    with pytest.warns(UserWarning, match="skipped 3"):
        out = train(proto, audio, "lfcc-gmm", tmp_path / "model", seed=0, holdout=0.25,
                    progress=lambda s, f: stages.append((s, f)), n_components=8, max_iter=15)
    card = json.loads((out / "card.json").read_text())
    for key in ("name", "version", "kind", "file", "sha256", "sample_rate", "window", "hop", "calibration",
                "threshold", "aggregation", "date", "training", "metrics"):
        assert key in card, key
    assert card["kind"] == "lfcc-gmm" and 0.0 < card["threshold"] < 1.0
    assert card["training"]["sizes"]["skipped_unreadable"] == 3
    assert card["training"]["holdout_grouping"] == "speaker"
    assert 0.0 < card["training"]["wall_seconds"] < 600.0  # wall time, not the training audio's length
    assert card["metrics"]["heldback_eer"] < 0.2
    assert stages[-1] == ("done", 1.0) and all(0.0 <= f <= 1.0 for _, f in stages)
    fr = [f for _, f in stages]
    assert fr == sorted(fr)  # progress only moves forward

    # the model dir loads through the generic card loader and separates fresh toy clips
    from voxwarden.detect.backends import load_backend
    from voxwarden.detect.card import load_card

    backend = load_backend(load_card(out))
    assert isinstance(backend, GmmBackend)
    rng = np.random.default_rng(99)
    bona = [_speak("an entirely new sentence for testing", v, 45, tmp_path / "n.wav") for v in VOICES[:6]]
    spoof = [_vocode(x, rng) for x in bona]
    s_b, s_s = backend.score_windows(bona), backend.score_windows(spoof)
    assert eer(s_b, s_s)[0] < 0.2
    assert card["calibration"]["a"] > 0


def test_train_refuses_one_label_and_bad_options(tmp_path: Path) -> None:
    proto, audio = _corpus(tmp_path, n_speakers=2, per_speaker=1)
    only_bona = tmp_path / "bona.tsv"
    only_bona.write_text("\n".join(ln for ln in proto.read_text().splitlines() if "spoof" not in ln) + "\n")
    with pytest.raises(TrainError, match="bona fide and spoof"):
        train(only_bona, audio, "lfcc-gmm", tmp_path / "m1")
    with pytest.raises(ValueError, match="unknown options"):
        train(proto, audio, "lfcc-gmm", tmp_path / "m2", holdout=0.5, n_layers=3)
    with pytest.raises(ValueError, match="not a folder"):
        train(proto, tmp_path / "nope", "lfcc-gmm", tmp_path / "m3")


def test_neural_without_torch_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proto, audio = _corpus(tmp_path, n_speakers=2, per_speaker=1)
    real_import = train_mod.importlib.import_module

    def fake_import(name: str, *a: object) -> object:
        if name == "voxwarden.detect.neural":
            raise ModuleNotFoundError("No module named 'torch'")
        return real_import(name, *a)

    monkeypatch.setattr(train_mod.importlib, "import_module", fake_import)
    with pytest.raises(TrainError, match=r"needs torch.*voxwarden\[train\]"):
        train(proto, audio, "lcnn", tmp_path / "m", holdout=0.5)


def test_max_files_subset_keeps_both_labels(tmp_path: Path) -> None:
    rows = [ProtocolRow(f"b{i}", "bonafide", "bonafide") for i in range(20)]
    rows += [ProtocolRow(f"s{i}", "spoof", "x") for i in range(3)]
    sub = train_mod._subset(rows, 6, seed=0)
    assert len(sub) == 6 and sum(r.label == "spoof" for r in sub) == 3


def test_failed_calibration_leaves_no_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proto, audio = _corpus(tmp_path, n_speakers=2, per_speaker=1)
    out = tmp_path / "m"
    out.mkdir()
    (out / "card.json").write_text("{}")  # a stale card from an earlier run

    def no_scores(model_dir: Path):  # every held-back clip fails to score
        def fail(clip: object) -> float:
            raise ValueError("boom")
        return fail

    monkeypatch.setattr(train_mod, "_clip_scorer", no_scores)
    with pytest.raises(TrainError, match="first failure: .*boom"):
        train(proto, audio, "lfcc-gmm", out, holdout=0.5, n_components=2, max_iter=3)
    assert not (out / "card.json").exists() and not (out / ".provisional").exists()


def _with_split(proto: Path, val_speakers: set[str]) -> Path:
    """The toy protocol plus a `split` column: the given speakers are `val`, the rest `train`."""
    lines = proto.read_text().splitlines()
    out = [lines[0] + "\tsplit"]
    out += [ln + ("\tval" if ln.split("\t")[3] in val_speakers else "\ttrain") for ln in lines[1:]]
    path = proto.with_name("split.tsv")
    path.write_text("\n".join(out) + "\n")
    return path


def test_split_keeps_only_that_splits_rows_and_is_recorded(tmp_path: Path) -> None:
    proto, audio = _corpus(tmp_path, n_speakers=6, per_speaker=2)
    split_proto = _with_split(proto, {"spk4", "spk5"})
    out = train(split_proto, audio, "lfcc-gmm", tmp_path / "m", seed=0, holdout=0.25, split="train",
                n_components=4, max_iter=5, features={"n_filters": 30, "n_coefs": 12})
    card = json.loads((out / "card.json").read_text())
    sizes = card["training"]["sizes"]
    # 4 train speakers x 2 clips x 2 labels = 16 rows; the val speakers' 8 rows are never read
    assert sizes["train_bonafide"] + sizes["train_spoof"] + sizes["heldback_bonafide"] + sizes["heldback_spoof"] \
        + sizes["heldback_unscoreable"] == 16
    assert card["training"]["split"] == "train" and card["training"]["recipe"].endswith("--split train")
    assert card["features"]["n_filters"] == 30 and card["features"]["n_coefs"] == 12
    assert card["training"]["options"]["features"] == {"n_filters": 30, "n_coefs": 12}
    backend = GmmBackend.load(card, out)
    assert backend.features.n_filters == 30 and backend.features.dim == 36  # 12 coefficients + deltas

    with pytest.raises(ValueError, match="no rows of split 'dev'"):
        train(split_proto, audio, "lfcc-gmm", tmp_path / "m2", split="dev")
    with pytest.raises(ValueError, match="no 'split' column"):
        train(proto, audio, "lfcc-gmm", tmp_path / "m3", split="train")
    with pytest.raises(ValueError, match="unknown LFCC fields"):
        train(proto, audio, "lfcc-gmm", tmp_path / "m4", holdout=0.5, features={"n_filter": 30})
    with pytest.raises(ValueError, match="n_coefs"):
        train(proto, audio, "lfcc-gmm", tmp_path / "m5", holdout=0.5, features={"n_filters": 10, "n_coefs": 20})
