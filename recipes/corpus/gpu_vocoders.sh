#!/usr/bin/env bash
# Train the corpus's neural vocoders concurrently on one GPU (bona fide speech only, never shared/data/dev).
#
#   recipes/corpus/gpu_vocoders.sh PACK.npz OUT_DIR [MINUTES]
#
# PACK.npz comes from `train_vocoder.py --pack` (the GPU machine has torch but no soundfile). Writes
# OUT_DIR/{hifigan-gan,hifigan-v2,vocos}.pt (+ .json meta) and OUT_DIR/train.log:
#   hifigan-gan  the shipped V3-like HiFi-GAN (recipes/corpus/vocoders/hifigan-gan.pt), resumed, adversarial
#   hifigan-v2   a larger V2-like HiFi-GAN (192 ch, x8 x8 x2 x2, kernels 3/7/11), adversarial from scratch
#   vocos        a Vocos-like ConvNeXt + iSTFT vocoder (8 x 256), adversarial from scratch
# All three use HiFi-GAN's MPD+MSD discriminators, feature matching and 45x mel-L1. PY (python3) and
# DEVICE_THREADS (2) are knobs; on a CPU the same command runs (slowly), which is how it is smoke-tested.
set -uo pipefail
PACK=${1:?usage: gpu_vocoders.sh PACK.npz OUT_DIR [MINUTES]}
OUT=${2:?usage: gpu_vocoders.sh PACK.npz OUT_DIR [MINUTES]}
MIN=${3:-7.5}
PY=${PY:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE/../../src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
LOG="$OUT/train.log"
T="--threads ${DEVICE_THREADS:-2} --minutes $MIN --data $PACK --adv --seed 0"
"$PY" "$HERE/train_vocoder.py" $T --name hifigan-gan --out "$OUT/hifigan-gan.pt" \
  --init "$HERE/vocoders/hifigan-gan.pt" >>"$LOG" 2>&1 &
"$PY" "$HERE/train_vocoder.py" $T --name hifigan-v2 --out "$OUT/hifigan-v2.pt" \
  --channels 192 --upsample 8,8,2,2 --kernels 3,7,11 --half >>"$LOG" 2>&1 &
"$PY" "$HERE/train_vocoder.py" $T --name vocos --out "$OUT/vocos.pt" --half \
  --arch vocos --dim 256 --layers 8 --intermediate 768 >>"$LOG" 2>&1 &
wait
grep -E "params|resumed|saved|Error|error" "$LOG"
ls -la "$OUT"
