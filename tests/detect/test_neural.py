"""Neural countermeasure: front-end invariances, ONNX export parity, variable lengths, toy training."""

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from voxwarden.detect.neural import (  # noqa: E402
    LinearCepstrum,
    LogSpectrogram,
    NeuralConfig,
    OCSoftmaxLoss,
    build_model,
    dct_matrix,
    eer,
    export_onnx,
    fit_logistic,
    freq_mask,
    linear_filterbank,
    main,
    score_clips,
    time_mask,
    train_neural,
)
from voxwarden.detect.onnx_backend import OnnxBackend  # noqa: E402

SR = 16000


def _toy(n: int, seed: int, seconds: float = 1.5) -> list[tuple[np.ndarray, int]]:
    """Bona fide: noise-excited formant-ish signal; spoof: the same plus a buzzy stable pulse train."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    items = []
    for i in range(n):
        lab = i % 2
        noise = rng.standard_normal(len(t))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
        x = np.convolve(noise, np.hanning(rng.integers(3, 12)), "same") * env
        if lab == 1:
            f0 = rng.uniform(100, 250)
            x = 0.3 * x + np.sign(np.sin(2 * np.pi * f0 * t)) * env
        x = x / np.abs(x).max() * rng.uniform(0.05, 0.9)
        items.append((x.astype(np.float32), lab))
    return items


def test_front_end_is_level_invariant() -> None:
    fe = LogSpectrogram(320, 160, 161, cmvn=False)
    x = torch.randn(2, SR, generator=torch.Generator().manual_seed(0)) * 0.3
    # a -50 dB level change would shift every log bin by ~11.5 without the per-window normalisation;
    # float32 rounding in near-empty bins leaves a few 1e-3 differences
    np.testing.assert_allclose(fe(x).numpy(), fe(x * 0.003).numpy(), atol=1e-2)
    assert fe(x).shape == (2, 1, 161, (SR - 320) // 160 + 1)


def test_front_end_matches_torch_stft() -> None:
    fe = LogSpectrogram(320, 160, 161, cmvn=False)
    x = torch.randn(1, SR, generator=torch.Generator().manual_seed(1))
    xn = (x - x.mean()) / (x.pow(2).mean().sqrt() + 1e-6)
    ref = torch.stft(xn[0], 320, 160, window=torch.hann_window(320), center=False, return_complex=True)
    logp = torch.log(ref.abs().pow(2) + 1e-5)
    logp = logp - logp.mean()
    np.testing.assert_allclose(fe(x)[0, 0].numpy(), logp.numpy(), atol=1e-3)


def test_linear_filterbank_and_dct_are_what_lfcc_needs() -> None:
    fb = linear_filterbank(161, 20).numpy()
    assert fb.shape == (20, 161) and fb.min() >= 0.0 and fb.max() <= 1.0 + 1e-6
    # triangles on equally spaced edges: between the first and the last centre they sum to one
    centres = np.argmax(fb, axis=1)
    assert np.all(np.diff(centres) > 0)
    np.testing.assert_allclose(fb[:, centres[0] : centres[-1] + 1].sum(axis=0), 1.0, atol=1e-5)
    assert fb[0, 0] == 0.0 and fb[-1, -1] == 0.0  # the edges themselves carry no weight
    d = dct_matrix(20, 20).numpy()
    np.testing.assert_allclose(d @ d.T, np.eye(20), atol=1e-5)  # orthonormal
    np.testing.assert_allclose(dct_matrix(5, 20).numpy(), d[:5], atol=1e-7)
    with pytest.raises(ValueError):
        linear_filterbank(161, 0)


def test_lfcc_front_end_shape_level_invariance_and_reference() -> None:
    fe = LinearCepstrum(320, 160, 161, filters=20, coeffs=20, cmvn=False)
    x = torch.randn(2, SR, generator=torch.Generator().manual_seed(2)) * 0.3
    out = fe(x)
    frames = (SR - 320) // 160 + 1
    assert out.shape == (2, 1, 60, frames)
    np.testing.assert_allclose(out.numpy(), fe(x * 0.003).numpy(), atol=2e-2)
    # statics from torch.stft, a numpy filterbank and DCT; deltas by the (c[t+1] - c[t-1]) / 2 rule
    xn = (x[0] - x[0].mean()) / (x[0].pow(2).mean().sqrt() + 1e-6)
    power = torch.stft(xn, 320, 160, window=torch.hann_window(320), center=False, return_complex=True).abs() ** 2
    c = dct_matrix(20, 20).numpy() @ np.log(linear_filterbank(161, 20).numpy() @ power.numpy() + 1e-5)
    np.testing.assert_allclose(out[0, 0, :20].numpy(), c, rtol=1e-4, atol=2e-3)
    d1 = out[0, 0, 20:40].numpy()
    np.testing.assert_allclose(d1[:, 5], (c[:, 6] - c[:, 4]) / 2, atol=2e-3)
    np.testing.assert_allclose(d1[:, 0], (c[:, 1] - c[:, 0]) / 2, atol=2e-3)  # the edge frame repeats
    np.testing.assert_allclose(out[0, 0, 40:, 7].numpy(), (d1[:, 8] - d1[:, 6]) / 2, atol=2e-3)
    cm = LinearCepstrum(320, 160, 161, filters=20, coeffs=20, cmvn=True)(x)
    np.testing.assert_allclose(cm.mean(dim=3).numpy(), 0.0, atol=1e-4)
    with pytest.raises(ValueError):
        LinearCepstrum(320, 160, 161, filters=20, coeffs=21, cmvn=False)


def test_lfcc_model_exports_and_trains(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_model(NeuralConfig(frontend="lfcc")).eval()
    assert export_onnx(net, tmp_path / "m.onnx") <= 1e-4  # 0.5 s, 2 s and 4 s inside
    with pytest.raises(ValueError, match="front end"):
        build_model(NeuralConfig(frontend="cqt"))
    opts = dict(batch=12, crop_min=0.5, crop_max=0.8, steps_per_epoch=8, threads=1, lr=4e-3)
    fields = train_neural(_toy(48, 1), tmp_path / "l", seed=3, epochs=3, frontend="lfcc", **opts)
    assert fields["architecture"]["frontend"] == "lfcc"
    plain = train_neural(_toy(48, 1), tmp_path / "s", seed=3, epochs=3, **opts)
    assert plain["architecture"]["frontend"] == "logspec" and plain["sha256"] != fields["sha256"]
    test = _toy(40, 99)
    scores = score_clips(tmp_path / "l", [a for a, _ in test], window=1.0, hop=0.5)
    assert eer(scores, np.array([lab for _, lab in test]))[0] <= 0.15


def test_export_matches_torch_for_variable_lengths(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_model(NeuralConfig()).eval()
    diff = export_onnx(net, tmp_path / "m.onnx")  # checks 0.5 s, 2 s, 4 s internally
    assert diff <= 1e-4
    assert (tmp_path / "m.onnx").stat().st_size < 10 * 1024 * 1024
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n, b in ((SR // 2, 1), (2 * SR, 4), (4 * SR + 123, 2)):
        x = torch.randn(b, n) * 0.2
        got = sess.run(None, {"waveform": x.numpy()})[0]
        assert got.shape == (b,)
        np.testing.assert_allclose(got, net(x).detach().numpy(), atol=1e-4)


def test_unknown_model_and_options_rejected(tmp_path: Path) -> None:
    items = _toy(8, 0)
    with pytest.raises(ValueError):
        train_neural(items, tmp_path, model="nope", epochs=1)
    with pytest.raises(ValueError):
        train_neural(items, tmp_path, epochs=1, learning_rat=1.0)
    with pytest.raises(ValueError):
        train_neural([(a, 0) for a, _ in items], tmp_path, epochs=1)  # one class only


def test_toy_set_separates_and_is_deterministic(tmp_path: Path) -> None:
    train = _toy(48, 1)
    opts = dict(batch=12, crop_min=0.5, crop_max=0.8, steps_per_epoch=8, threads=1, lr=4e-3)
    seen: list[float] = []
    fields = train_neural(
        train, tmp_path / "a", seed=3, epochs=3, progress=lambda m, f: seen.append(f), **opts
    )
    assert fields["kind"] == "onnx" and fields["file"] == "model.onnx"
    assert len(fields["sha256"]) == 64
    assert fields["training"]["onnx_max_abs_diff"] <= 1e-4
    assert fields["training"]["steps"] == 24 and seen[-1] == pytest.approx(1.0)

    test = _toy(40, 99)
    scores = score_clips(tmp_path / "a", [a for a, _ in test], window=1.0, hop=0.5)
    labels = np.array([lab for _, lab in test])
    assert eer(scores, labels)[0] <= 0.1
    assert scores[labels == 1].mean() > scores[labels == 0].mean()

    again = train_neural(train, tmp_path / "b", seed=3, epochs=3, **opts)
    be_a = OnnxBackend.load({"file": "model.onnx"}, tmp_path / "a")
    be_b = OnnxBackend.load({"file": "model.onnx"}, tmp_path / "b")
    w = [test[0][0], test[1][0]]
    np.testing.assert_allclose(be_a.score_windows(w), be_b.score_windows(w), atol=1e-5)
    assert again["training"]["final_loss"] == fields["training"]["final_loss"]


def test_freq_mask_zeroes_whole_bands_per_row_and_nothing_else() -> None:
    spec = torch.randn(64, 1, 161, 30)
    gen = torch.Generator().manual_seed(5)
    out = freq_mask(spec, gen, width=20, count=2)
    zero_bins = (out == 0).all(dim=3)[:, 0]  # [B, F]: bins zeroed over the whole window
    kept = ~zero_bins
    # every bin is either untouched or zeroed for all frames: masks are bands, not patches
    assert torch.equal(out[kept[:, None, :, None].expand_as(out)], spec[kept[:, None, :, None].expand_as(spec)])
    per_row = zero_bins.sum(dim=1)
    assert int(per_row.max()) <= 40 and int(per_row.min()) >= 0
    assert 8 <= float(per_row.float().mean()) <= 32  # two bands of 0..20 bins: 20 on average (less overlap)
    assert len({tuple(r.nonzero().flatten().tolist()) for r in zero_bins}) > 32  # drawn per row
    # a band is contiguous (one or two runs of zeroed bins per row)
    runs = (zero_bins[:, 1:] & ~zero_bins[:, :-1]).sum(dim=1) + zero_bins[:, 0].long()
    assert int(runs.max()) <= 2
    # deterministic for the generator's seed; off when width or count is 0
    again = freq_mask(spec, torch.Generator().manual_seed(5), width=20, count=2)
    assert torch.equal(out, again)
    assert freq_mask(spec, gen, width=0, count=2) is spec
    assert freq_mask(spec, gen, width=20, count=0) is spec
    # absurd widths and counts are clamped to the bins, not looped over
    assert (freq_mask(spec, gen, width=10**9, count=10**9) == 0).float().mean() > 0.5


def test_time_mask_zeroes_whole_frames_per_row_and_nothing_else() -> None:
    spec = torch.randn(64, 1, 161, 200)
    out = time_mask(spec, torch.Generator().manual_seed(6), width=20, count=2)
    zero = (out == 0).all(dim=2)[:, 0]  # [B, T]: frames zeroed over every bin
    kept = ~zero
    assert torch.equal(out[kept[:, None, None, :].expand_as(out)], spec[kept[:, None, None, :].expand_as(spec)])
    per_row = zero.sum(dim=1)
    assert int(per_row.max()) <= 40 and 8 <= float(per_row.float().mean()) <= 32
    runs = (zero[:, 1:] & ~zero[:, :-1]).sum(dim=1) + zero[:, 0].long()
    assert int(runs.max()) <= 2 and len({tuple(r.nonzero().flatten().tolist()) for r in zero}) > 32
    assert torch.equal(out, time_mask(spec, torch.Generator().manual_seed(6), width=20, count=2))
    assert time_mask(spec, torch.Generator(), width=0, count=2) is spec
    assert (time_mask(spec, torch.Generator(), width=10**9, count=10**9) == 0).float().mean() > 0.5


def test_freq_mask_training_changes_the_model_but_not_the_graph(tmp_path: Path) -> None:
    train = _toy(32, 2)
    opts = dict(batch=8, crop_min=0.5, crop_max=0.6, steps_per_epoch=4, threads=1)
    plain = train_neural(train, tmp_path / "plain", seed=1, epochs=2, **opts)
    masked = train_neural(train, tmp_path / "masked", seed=1, epochs=2, freq_mask=20, freq_masks=2, **opts)
    off = train_neural(train, tmp_path / "off", seed=1, epochs=2, freq_mask=0, freq_masks=5, time_masks=3, **opts)
    timed = train_neural(train, tmp_path / "timed", seed=1, epochs=2, time_mask=20, **opts)
    both = train_neural(train, tmp_path / "both", seed=1, epochs=2, freq_mask=20, freq_masks=2, time_mask=20,
                        **opts)
    assert len({plain["sha256"], masked["sha256"], timed["sha256"], both["sha256"]}) == 4
    # masks on: another model; masks off: bit-identical to the recipe without the option
    assert masked["sha256"] != plain["sha256"]
    assert off["sha256"] == plain["sha256"]
    assert masked["training"]["hyper_parameters"]["freq_mask"] == 20
    # the masks act only while training: the exported graph is the plain one and scores like torch
    onnx = pytest.importorskip("onnx")
    ops = [[n.op_type for n in onnx.load(str(tmp_path / d / "model.onnx")).graph.node]
           for d in ("plain", "masked", "timed")]
    assert ops[0] == ops[1] == ops[2]
    assert masked["training"]["onnx_max_abs_diff"] <= 1e-4
    be = OnnxBackend.load({"file": "model.onnx"}, tmp_path / "masked")
    assert np.isfinite(be.score_windows([train[0][0], train[1][0]])).all()


def test_cli_passes_freq_mask_and_rejects_negative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import voxwarden.detect.neural as neural

    got: list[dict] = []
    monkeypatch.setattr(neural, "build_default", lambda *a, **kw: got.append(kw))
    args = [str(tmp_path / "protocol.tsv"), str(tmp_path / "out")]
    assert main([*args, "--freq-mask", "20", "--freq-masks", "3"]) == 0
    assert main(args) == 0
    assert main([*args, "--time-mask", "15", "--time-masks", "1"]) == 0
    assert main([*args, "--frontend", "lfcc"]) == 0
    assert got[0]["freq_mask"] == 20 and got[0]["freq_masks"] == 3 and "time_mask" not in got[0]
    assert "freq_mask" not in got[1] and "time_mask" not in got[1]  # off unless asked for
    assert got[2]["time_mask"] == 15 and got[2]["time_masks"] == 1 and "freq_mask" not in got[2]
    assert got[3]["frontend"] == "lfcc" and all("frontend" not in g for g in got[:3])
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "protocol.tsv"), str(tmp_path / "out"), "--freq-mask", "-1"])
    assert e.value.code == 2 and "--freq-mask" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*args, "--time-masks", "-2"])
    assert e.value.code == 2 and "--time-masks" in capsys.readouterr().err


def test_ocsoftmax_loss_follows_the_margins() -> None:
    loss = OCSoftmaxLoss(20.0, (0.9, 0.2))
    # outputs are -alpha * cos: a bona fide row at cos 1 and a spoof row at cos -1 cost almost nothing
    good = loss(torch.tensor([-20.0, 20.0]), torch.tensor([0.0, 1.0]))
    assert float(good) < 0.2
    # labels swapped: softplus(20 (1 - 0.2)) for the "spoof" at cos 1, softplus(20 (0.9 + 1)) for the other
    bad = loss(torch.tensor([-20.0, 20.0]), torch.tensor([1.0, 0.0]))
    assert float(bad) == pytest.approx((20 * 0.8 + 20 * 1.9) / 2, rel=1e-3)
    # the margins, not zero, are the decision points: bona fide at cos 0.5 is still penalised
    assert float(loss(torch.tensor([-10.0]), torch.tensor([0.0]))) == pytest.approx(
        float(torch.nn.functional.softplus(torch.tensor(20 * 0.4))), rel=1e-5
    )


def test_ocsoftmax_head_exports_bounded_scores_and_learns_the_toy_set(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_model(NeuralConfig(head="ocsoftmax")).eval()
    assert export_onnx(net, tmp_path / "m.onnx") <= 1e-4
    x = torch.randn(3, SR) * 0.2
    out = net(x).detach().numpy()
    assert out.shape == (3,) and np.all(np.abs(out) <= 20.0 + 1e-4)  # -alpha * cosine
    with pytest.raises(ValueError, match="unknown head"):
        build_model(NeuralConfig(head="arcface"))

    fields = train_neural(
        _toy(48, 1), tmp_path / "oc", seed=3, epochs=6, head="ocsoftmax", batch=12, crop_min=0.5,
        crop_max=0.8, steps_per_epoch=8, threads=1, lr=1e-2,
    )
    assert fields["architecture"]["head"] == "ocsoftmax"
    assert fields["architecture"]["oc_margins"] == (0.9, 0.2)
    test = _toy(40, 99)
    scores = score_clips(tmp_path / "oc", [a for a, _ in test], window=1.0, hop=0.5)
    labels = np.array([lab for _, lab in test])
    assert eer(scores, labels)[0] <= 0.1
    assert scores[labels == 1].mean() > scores[labels == 0].mean()  # higher = more likely synthetic


def test_eer_and_logistic_fit() -> None:
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(-2, 1, 500), rng.normal(2, 1, 500)])
    y = np.concatenate([np.zeros(500), np.ones(500)])
    e, thr = eer(s, y)
    assert 0.01 < e < 0.05 and abs(thr) < 0.5
    assert eer(-s, y)[0] > 0.9
    a, b = fit_logistic(s, y)
    # true posterior for N(+-2, 1): logit = 4 s
    assert a == pytest.approx(4.0, rel=0.2) and abs(b) < 0.3


def test_batches_are_balanced_and_use_long_crops() -> None:
    from voxwarden.detect.neural import _sample_batch

    rng = np.random.default_rng(0)
    # bona fide clips are long, spoof clips mixed: long crops must still come from both labels
    items = [
        (np.full(int(SR * d), lab, np.float32), lab)
        for lab, d in [(0, 5.0)] * 6 + [(1, 1.0)] * 6 + [(1, 4.5)]
    ]
    labels = np.array([lab for _, lab in items])
    lens = np.array([len(a) for a, _ in items])
    by = {}
    for lab in (0, 1):
        idx = np.flatnonzero(labels == lab)
        idx = idx[np.argsort(lens[idx])]
        by[lab] = (idx, lens[idx])
    seen = []
    for _ in range(20):
        x, y = _sample_batch(items, by, rng, 8, 1.0, 4.0)
        assert y.sum() == 4 and x.shape[0] == 8
        # each row is a crop of a clip of its own label (the clips are constant = label)
        np.testing.assert_array_equal(x[:, 0], y)
        seen.append(x.shape[1])
    assert max(seen) > 3 * SR and min(seen) >= SR


def _write_corpus(root: Path, with_split: bool) -> Path:
    import soundfile as sf

    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["file\tlabel\tsystem\tspeaker" + ("\tsplit" if with_split else "")]
    for i in range(12):
        lab = "spoof" if i % 2 else "bonafide"
        system = ("tts-a" if i % 4 == 1 else "tts-b") if lab == "spoof" else "bonafide"
        sr = 8000 if i == 0 else SR
        sf.write(str(root / "audio" / f"c{i}.flac"), rng.standard_normal(sr) * 0.1, sr)
        split = "val" if i >= 8 else "train"
        lines.append(f"c{i}.flac\t{lab}\t{system}\tspk{i // 2}" + (f"\t{split}" if with_split else ""))
    (root / "audio" / "bad.flac").write_bytes(b"not audio")
    lines.append("bad.flac\tbonafide\tbonafide\tspk9")
    (root / "protocol.tsv").write_text("\n".join(lines) + "\n")
    return root / "protocol.tsv"


def test_read_protocol_resamples_and_skips_unreadable(tmp_path: Path) -> None:
    from voxwarden.detect.neural import read_protocol

    items = read_protocol(_write_corpus(tmp_path, with_split=True))
    assert len(items) == 12  # the undecodable file is skipped
    assert all(len(it.audio) == SR for it in items)  # the 8 kHz clip was resampled to 16 kHz
    assert [it.label for it in items[:4]] == [0, 1, 0, 1]
    assert items[1].system == "tts-a" and items[0].split == "train" and items[9].split == "val"


def test_heldout_split_uses_protocol_split_else_speakers(tmp_path: Path) -> None:
    from voxwarden.detect.neural import per_system_eer, read_protocol, train_heldout

    items = read_protocol(_write_corpus(tmp_path / "a", with_split=True))
    tr, ho, how = train_heldout(items, 0.3, 0)
    assert "split column" in how and ho == [8, 9, 10, 11]
    items = read_protocol(_write_corpus(tmp_path / "b", with_split=False))
    tr, ho, how = train_heldout(items, 0.3, 0)
    assert "speaker" in how and ho and tr
    assert not {items[i].speaker for i in tr} & {items[i].speaker for i in ho}
    scores = np.array([float(it.label) for it in items])
    res = per_system_eer(scores, items)
    assert res == {"overall": 0.0, "tts-a": 0.0, "tts-b": 0.0}


def test_leave_out_folds_group_and_baseline_scoring(tmp_path: Path) -> None:
    from voxwarden.detect.neural import (
        CorpusItem,
        _logo_folds,
        left_out_eer,
        logo_eval,
    )

    toy = _toy(64, 5)
    # three spoof "systems" of the same toy kind; bona fide split into train (first 48) and held-back
    items = [
        CorpusItem(f"f{i}", lab, "bonafide" if lab == 0 else f"sys-{i % 3}", f"spk{i}", a)
        for i, (a, lab) in enumerate(toy)
    ]
    tr, ho = list(range(48)), list(range(48, 64))
    assert _logo_folds(items, tr, None, False) == [["sys-0"], ["sys-1"], ["sys-2"]]
    assert _logo_folds(items, tr, ["sys-2", "sys-0"], True) == [["sys-2", "sys-0"]]
    with pytest.raises(ValueError, match="not among"):
        _logo_folds(items, tr, ["nope"], False)
    with pytest.raises(ValueError, match="no spoof system"):
        _logo_folds(items, tr, [], True)

    opts = dict(batch=12, crop_min=0.5, crop_max=0.8, steps_per_epoch=8, threads=1, lr=4e-3)
    seen: list[str] = []
    res = logo_eval(items, tr, ho, seed=0, systems=["sys-0", "sys-1"], group=True, epochs=3,
                    progress=lambda m, f: seen.append(m), keep_dir=tmp_path / "folds", **opts)
    assert set(res) == {"sys-0", "sys-1"} and len(seen) == 1 and "sys-0+sys-1" in seen[0]
    # the kept fold model scores the same trials to the same EER (it is the model that was evaluated)
    assert left_out_eer(tmp_path / "folds" / "sys-0+sys-1", items, ho, ["sys-0", "sys-1"]) == res
    # the toy artefact is shared by all systems, so a model that never saw sys-0/1 still catches them
    assert max(res.values()) <= 0.2
    from voxwarden.detect.card import ModelError

    with pytest.raises(ModelError, match="missing"):
        left_out_eer(tmp_path / "no-model", items, ho, ["sys-2"])  # a baseline must be a trained model


def _recipe(name: str):
    """Import a script of recipes/ (not a package) by path."""
    from _recipes import load_recipe

    return load_recipe(name)


def test_compare_models_recipe_pairs_two_models_on_the_held_back_clips(tmp_path: Path) -> None:
    import json
    import subprocess

    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    ex = Path(__file__).resolve().parents[2] / "examples" / "audio"
    human, sr = sf.read(str(ex / "human-allison-prompt.flac"), dtype="float32")
    assert sr == SR
    root = tmp_path / "c"
    (root / "audio").mkdir(parents=True)
    lines = ["file\tlabel\tsystem\tspeaker\tsplit"]
    words = ["transfer the money today", "confirm your account number", "call me back tonight",
             "the meeting moved to noon", "please hold the line", "your parcel is on its way"]
    for i in range(12):
        f = root / "audio" / f"c{i}.wav"
        if i % 2:  # spoof: espeak-ng, two voices = two systems
            voice = "en-us" if i % 4 == 1 else "en-gb"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(f), words[i // 2]], check=True,
                           capture_output=True)
            lab, sysname = "spoof", f"espeak-{voice}"
        else:  # bona fide: a gain-varied crop of the human example
            start = (i // 2) * SR // 4
            sf.write(str(f), human[start : start + 2 * SR] * (0.5 + 0.1 * i), SR)
            lab, sysname = "bonafide", "bonafide"
        lines.append(f"c{i}.wav\t{lab}\t{sysname}\tspk{i}\t{'val' if i >= 2 else 'train'}")
    (root / "protocol.tsv").write_text("\n".join(lines) + "\n")
    models = Path(__file__).resolve().parents[2] / "src" / "voxwarden" / "models"
    cmp = _recipe("compare_models")
    out = tmp_path / "cmp.json"
    assert cmp.main([str(root / "protocol.tsv"), str(models / "default"), str(models / "default"),
                     "--resamples", "50", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["scored"] + res["unscoreable"] == 10 and res["scored"] >= 6  # the val split only
    assert set(res["systems"]) == {"overall", "espeak-en-us", "espeak-en-gb"}
    same = res["systems"]["overall"]
    assert same["diff"] == 0 and same["low"] == 0 and same["high"] == 0  # a model against itself
    assert cmp.main([str(root / "protocol.tsv"), str(models / "default"), str(tmp_path / "no-model")]) == 2
    assert cmp.main([str(tmp_path / "none.tsv"), str(models / "default"), str(models / "default")]) == 2
    other = cmp.compare(root / "protocol.tsv", models / "default", models / "lfcc-gmm", resamples=50)
    r = other["systems"]["overall"]
    assert r["low"] <= r["diff"] <= r["high"] and r["n_bonafide"] + r["n_spoof"] == other["scored"]
    # a group without one system: the other system's spoof clips against the same bona fide clips
    ex = cmp.compare(root / "protocol.tsv", models / "default", models / "lfcc-gmm", resamples=50,
                     exclude=("espeak-en-gb",))
    w = ex["systems"]["overall without espeak-en-gb"]
    us = ex["systems"]["espeak-en-us"]
    assert w["n_spoof"] == us["n_spoof"] and w["eer_b"] == us["eer_b"]
    # --all-rows: every row is scored, train rows included (a set neither model trained on)
    every = cmp.compare(root / "protocol.tsv", models / "default", models / "lfcc-gmm", resamples=50,
                        all_rows=True)
    assert every["scored"] + every["unscoreable"] == 12 and every["scored"] > other["scored"]
    assert every["split"] == "every row of the protocol"


def test_logo_table_recipe_reads_fold_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    for name, v, base in (("vits", 0.31, 0.02), ("world", 0.12, None)):
        body = {"logo_eer": {name: v}}
        if base is not None:
            body["baseline_left_out_eer"] = {"model": "m", name: base}
        (tmp_path / f"logo-r-{name}.json").write_text(json.dumps(body))
    tab = _recipe("logo_table")
    assert tab.main([str(p) for p in sorted(tmp_path.glob("logo-r-*.json"))]) == 0
    text = capsys.readouterr().out
    assert "| vits | 31.0% | 2.0% |" in text and "| world | 12.0% | - |" in text
    assert "mean of 2 systems** | **21.5%" in text
    # a family fold (gpu_logo.sh A+B): each member's row names the rest, old files by their note
    (tmp_path / "logo-r-a+b.json").write_text(json.dumps({"logo_eer": {"fa": 0.4, "fb": 0.2}, "logo_group": True}))
    (tmp_path / "logo-r-c+d.json").write_text(json.dumps(
        {"logo_eer": {"fc": 0.1, "fd": 0.3}, "logo_note": "leave-group-out on the training corpus (...)"}))
    (tmp_path / "logo-r-many.json").write_text(json.dumps({"logo_eer": {"ga": 0.1, "gb": 0.3}, "logo_group": False}))
    assert tab.main([str(tmp_path / n) for n in ("logo-r-a+b.json", "logo-r-c+d.json", "logo-r-many.json")]) == 0
    text = capsys.readouterr().out
    assert "| fa (left out with fb) | 40.0% | - |" in text and "| fd (left out with fc) | 30.0% | - |" in text
    assert "| ga | 10.0% | - |" in text and "mean of 6 systems** | **23.3%" in text
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"something": 1}')
    assert tab.main([str(tmp_path / "broken.json")]) == 2
    assert tab.main([str(tmp_path / "other.json")]) == 2
    assert tab.main([str(tmp_path / "missing.json")]) == 2
