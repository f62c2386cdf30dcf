"""/v1/mark: embed → detect round trip with per-tenant keys, signed labels that /v1/verify accepts, and the
errors (bad payloads, bad audio, size, scopes). Each DB test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import stat

import numpy as np
import soundfile as sf
from _api_support import MAX_UPLOAD, Env

from voxwarden.mark.keys import payload_from_ids
from voxwarden.store import audit, verify_audit_chain


def _embed(env: Env, data: bytes, who: str = "mark", name: str = "speech.wav", **form: str):  # noqa: ANN202
    return env.client.post("/v1/mark/embed", files={"file": (name, data, "audio/wav")}, data=form,
                           headers=env.auth(who))


def _detect(env: Env, data: bytes, who: str = "mark"):  # noqa: ANN202
    return env.client.post("/v1/mark/detect", files={"file": ("x.wav", data, "audio/wav")}, headers=env.auth(who))


def test_embed_then_detect_round_trip_with_tenant_keys(env: Env, speech: bytes) -> None:
    r = _embed(env, speech, provider="acme-tts", content_id="42", name="../voice clip.wav")
    assert r.status_code == 200, r.text
    want = payload_from_ids("acme-tts", "42").hex()
    assert r.headers["content-type"] == "audio/wav" and r.headers["x-voxwarden-payload"] == want
    assert r.headers["content-disposition"] == 'attachment; filename="voice_clip.marked.wav"'
    marked = r.content
    x, sr = sf.read(io.BytesIO(marked))
    y, sr0 = sf.read(io.BytesIO(speech))
    assert sr == sr0 and len(x) == len(y) and not np.array_equal(x, y)  # same format family, audio changed
    got = _detect(env, marked)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["present"] is True and body["payload"] == want and body["confidence"] > 0.99 and body["spans"]
    assert _detect(env, speech).json()["present"] is False  # the unmarked original
    assert _detect(env, marked, who="other").json()["present"] is False  # another tenant's key finds nothing
    # keys stay on the server, private and per tenant
    d = env.app.state.settings.data_dir / "tenant-keys" / env.tenant_a
    assert stat.S_IMODE((d / "watermark.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert (d / "watermark.key").read_text().split()[-1] not in r.headers.values()
    with env.store.session() as s:
        [e] = audit.entries(s, env.tenant_a, action="mark.embed")
        assert e.details["payload"] == want and e.details["marked_sha256"] == r.headers["x-voxwarden-sha256"]
        assert len(audit.entries(s, env.tenant_a, action="mark.detect")) == 2
        assert verify_audit_chain(s).ok


def test_label_write_then_verify_says_labelled(env: Env, speech: bytes) -> None:
    r = env.client.post("/v1/mark/label", files={"file": ("s.wav", speech, "audio/wav")},
                        data={"producer": "acme-tts", "produce_id": "77"}, headers=env.auth("mark"))
    assert r.status_code == 200, r.text
    labelled = r.content
    pub = env.client.get("/v1/mark/label-key", headers=env.auth("mark")).json()
    assert pub["alg"] == "ed25519" and pub["key_id"] == r.headers["x-voxwarden-label-key-id"]
    assert "PUBLIC KEY" in pub["public_key_pem"] and "PRIVATE" not in pub["public_key_pem"]
    v = env.client.post("/v1/verify", files={"file": ("l.wav", labelled, "audio/wav")}, headers=env.auth("scan"))
    assert v.status_code == 200, v.text
    body = v.json()
    assert body["verdict"] == "labelled-ai", body
    assert body["signature_valid"] is True and body["label"]["ContentProducer"] == "acme-tts"
    assert pub["key_id"] in body["reasons"][0]
    # the label does not change the audio: the original still has none
    plain = env.client.post("/v1/verify", files={"file": ("p.wav", speech, "audio/wav")}, headers=env.auth("scan"))
    assert plain.json()["label"] is None
    with env.store.session() as s:
        [e] = audit.entries(s, env.tenant_a, action="mark.label")
        assert e.details["key_id"] == pub["key_id"] and e.details["produce_id"] == "77"


def test_marked_and_labelled_file_agrees_and_verify_uses_the_tenant_watermark_key(sqlite_env: Env,
                                                                                   speech: bytes) -> None:
    env = sqlite_env
    marked = _embed(env, speech, provider="acme-tts", content_id="9").content
    labelled = env.client.post("/v1/mark/label", files={"file": ("m.wav", marked)},
                               data={"producer": "acme-tts", "produce_id": "9"}, headers=env.auth("admin")).content
    body = env.client.post("/v1/verify", files={"file": ("m.wav", labelled)}, headers=env.auth("scan")).json()
    assert body["verdict"] == "labelled-ai"
    assert body["watermark"]["present"] is True  # found with the tenant's key, not the demo key
    assert any("matches label ids" in x for x in body["reasons"])
    # a label whose ids disagree with the watermark payload is a mismatch
    wrong = env.client.post("/v1/mark/label", files={"file": ("m.wav", marked)},
                            data={"producer": "acme-tts", "produce_id": "10"}, headers=env.auth("mark")).content
    assert env.client.post("/v1/verify", files={"file": ("m.wav", wrong)},
                           headers=env.auth("scan")).json()["verdict"] == "label-mismatch"


def test_other_formats_keep_their_family(sqlite_env: Env, speech: bytes) -> None:
    env = sqlite_env
    r = _embed(env, speech, payload="0A0B0C0D", format="flac")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/flac" and r.content[:4] == b"fLaC"
    assert _detect(env, r.content).json()["payload"] == "0a0b0c0d"
    again = _embed(env, r.content, payload="01020304", name="x.flac")  # FLAC in → FLAC out
    assert again.status_code == 200 and again.content[:4] == b"fLaC"
    lab = env.client.post("/v1/mark/label", files={"file": ("x.flac", r.content)},
                          data={"producer": "p", "produce_id": "1"}, headers=env.auth("mark"))
    assert lab.status_code == 200 and lab.headers["content-type"] == "audio/flac"


def test_mark_errors_are_clear_4xx(sqlite_env: Env, speech: bytes) -> None:
    env = sqlite_env
    for form, needle in (({}, "give payload"), ({"payload": "xyz"}, "8 hex"), ({"payload": "123456789"}, "8 hex"),
                         ({"payload": "01020304", "provider": "a", "content_id": "b"}, "not both"),
                         ({"provider": "a"}, "give payload"), ({"payload": "01020304", "format": "exe"}, "format"),
                         ({"provider": "a\x00", "content_id": "b"}, "printable")):
        r = _embed(env, speech, **form)
        assert r.status_code == 422 and needle in r.json()["message"], (form, r.text)
    bad = _embed(env, b"this is no audio file" * 30, payload="01020304")
    assert bad.status_code == 422 and bad.json()["type"] == "not_media"
    assert "voxwarden-mark-" not in bad.json()["message"]  # temp paths never reach the client
    short = io.BytesIO()
    sf.write(short, (0.1 * np.sin(np.arange(1600) / 5.0)).astype(np.float32), 16000, format="WAV")
    r = _embed(env, short.getvalue(), payload="01020304")
    assert r.status_code == 422 and r.json()["type"] == "mark_not_detectable"
    assert "try format=wav" not in r.json()["message"]  # it was WAV already: only a lossy format is blamed
    big = _embed(env, b"\0" * (MAX_UPLOAD + 1), payload="01020304")
    assert big.status_code == 413 and big.json()["type"] == "too_large"
    assert _detect(env, b"").json()["type"] == "empty_file"
    for form, needle in (({"producer": "p", "produce_id": "1", "label": "7"}, "label must be"),
                         ({"producer": " ", "produce_id": "1"}, "producer is required"),
                         ({"producer": "p", "produce_id": "1", "role": "king"}, "role"),
                         ({"producer": "p", "produce_id": "1", "role": "propagator"}, "propagate_id")):
        r = env.client.post("/v1/mark/label", files={"file": ("s.wav", speech)}, data=form, headers=env.auth("mark"))
        assert r.status_code == 422 and needle in r.json()["message"], (form, r.text)
    r = env.client.post("/v1/mark/label", files={"file": ("s.webm", b"\x1aE\xdf\xa3" + b"\0" * 64)},
                        data={"producer": "p", "produce_id": "1"}, headers=env.auth("mark"))
    assert r.status_code == 422 and r.json()["type"] == "unsupported_container"
    with env.store.session() as s:
        assert len(audit.entries(s, env.tenant_a, action="mark.rejected")) >= 3


def test_mark_scopes(env: Env, speech: bytes) -> None:
    for path in ("/v1/mark/embed", "/v1/mark/detect", "/v1/mark/label"):
        assert env.client.post(path, files={"file": ("a.wav", speech)}).status_code == 401
        r = env.client.post(path, files={"file": ("a.wav", speech)}, headers=env.auth("scan"))
        assert r.status_code == 403 and r.json()["type"] == "forbidden"
    assert env.client.get("/v1/mark/label-key", headers=env.auth("rooms")).status_code == 403
    assert _embed(env, speech, who="admin", payload="01020304").status_code == 200  # admin holds every scope


def test_unusable_key_or_spool_directory_is_503_not_500(sqlite_env: Env, speech: bytes) -> None:
    env = sqlite_env
    data_dir = env.app.state.settings.data_dir
    (data_dir / "tenant-keys").write_text("a file where the key directory should be")
    r = _embed(env, speech, payload="01020304")
    assert r.status_code == 503 and r.json()["type"] == "key_store_unavailable"
    assert "tenant-keys" not in r.json()["message"]
    (data_dir / "spool").write_text("a file where the spool directory should be")
    r = env.client.post("/v1/scans?mode=async", files={"file": ("a.wav", speech)}, headers=env.auth("scan"))
    assert r.status_code == 503 and r.json()["type"] == "spool_unavailable"
