import json
from pathlib import Path

import pytest

from voxwarden.detect.backends import load_backend
from voxwarden.detect.card import ModelError, load_card, sha256_file


def _model_dir(tmp_path: Path, **over) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "w.bin").write_bytes(b"weights")
    card = {"name": "t", "version": "1", "kind": "lfcc-gmm", "file": "w.bin", "sha256": sha256_file(d / "w.bin"),
            "window": 4.0, "hop": 2.0, "calibration": {"a": 2.0, "b": -1.0}, "threshold": 0.6}
    card.update(over)
    (d / "card.json").write_text(json.dumps(card))
    return d


def test_card_loads_and_keeps_fields(tmp_path):
    card = load_card(_model_dir(tmp_path))
    assert card.model_id == "t@1"
    assert (card.calibration_a, card.calibration_b, card.threshold) == (2.0, -1.0, 0.6)


def test_card_path_to_card_json_works(tmp_path):
    d = _model_dir(tmp_path)
    assert load_card(d / "card.json").directory == d


def test_sha_mismatch_is_refused(tmp_path):
    d = _model_dir(tmp_path)
    (d / "w.bin").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        load_card(d)


@pytest.mark.parametrize("over, msg", [
    ({"threshold": 1.5}, "threshold"),
    ({"file": "../../etc/passwd"}, "plain file name"),
    ({"file": "absent.bin", "sha256": ""}, "missing"),
    ({"window": 0}, "window"),
])
def test_bad_cards_are_refused(tmp_path, over, msg):
    with pytest.raises(ModelError, match=msg):
        load_card(_model_dir(tmp_path, **over))


def test_malformed_json_and_missing_dir(tmp_path):
    d = _model_dir(tmp_path)
    (d / "card.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        load_card(d)
    with pytest.raises(ModelError):
        load_card(str(tmp_path / "nope" / "x"))
    with pytest.raises(ModelError, match="no packaged model"):
        load_card("no-such-model")


def test_unknown_kind_is_a_model_error(tmp_path):
    card = load_card(_model_dir(tmp_path, kind="telepathy"))
    with pytest.raises(ModelError, match="unknown model kind"):
        load_backend(card)
