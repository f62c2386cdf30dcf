#!/usr/bin/env bash
# Leave-one-generator-out folds of the default recipe, many at once on one GPU machine.
#
#   recipes/gpu_logo.sh CORPUS_DIR OUT_DIR [SYSTEMS] [TAG] [EPOCHS] [AUGMENT]
#
# One training per spoof system of CORPUS_DIR/protocol.tsv (or the comma-separated SYSTEMS): the recipe's
# LCNN trained on the `train` split without that system, then scored on all of its clips against the
# held-back (`val`) bona fide clips; the shipped default (src/voxwarden/models/default) is scored on the
# same trials as a baseline. Writes OUT_DIR/logo-TAG-SYSTEM.json (the `--logo-only` JSON) and
# OUT_DIR/logo-TAG.log; `python recipes/logo_table.py OUT_DIR/logo-TAG-*.json` prints the table.
# EPOCHS (16) x 50 steps is the recipe's 800 steps; AUGMENT (0) its augmentation. JOBS (8) folds run at
# once, DEVICE (cuda) trains them, EXTRA adds trainer options (e.g. --cmvn); on a CPU the same command runs, one fold at a time is ~40 min.
# KEEP_MODELS=1 keeps each fold's model in OUT_DIR/models-TAG/SYSTEM/ (~0.6 MB each), so the folds can be
# scored again on a CPU later (e.g. per clip beside recipes/lfcc_logo.py --keep for a fusion study).
# A fold written A+B (e.g. SYSTEMS="festival-diphone+festival-hts,world") leaves A and B out together: one
# training without the whole family, each member scored on its own (stricter than leaving one out; the JSON
# is OUT_DIR/logo-TAG-A+B.json).
# Never point this at shared/data/dev.
set -uo pipefail
CORPUS=${1:?usage: gpu_logo.sh CORPUS_DIR OUT_DIR [SYSTEMS] [TAG] [EPOCHS] [AUGMENT]}
OUT=${2:?usage: gpu_logo.sh CORPUS_DIR OUT_DIR [SYSTEMS] [TAG] [EPOCHS] [AUGMENT]}
SYSTEMS=${3:-}
TAG=${4:-recipe}
EPOCHS=${5:-16}
AUGMENT=${6:-0}
PY=${PY:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE/../src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
mkdir -p "$OUT"
if [[ -z "$SYSTEMS" ]]; then
  SYSTEMS=$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["label"] == "spoof" && $col["split"] == "train" { print $col["system"] }' \
    "$CORPUS/protocol.tsv" | sort -u | paste -sd, -)
fi
echo "folds ($TAG, $EPOCHS x 50 steps, augment $AUGMENT): $SYSTEMS"
# the system name reaches the fold as its own argument ($7), never as part of the shell text
echo "$SYSTEMS" | tr ',' '\n' | xargs -P "${JOBS:-8}" -I{} sh -c '
  "$0" -m voxwarden.detect.neural "$1/protocol.tsv" /tmp/unused --logo-only "$2/logo-$3-$7.json" \
    --logo-systems "$(printf %s "$7" | tr + ,)" $(case "$7" in (*+*) echo --logo-group;; esac) \
    --logo-epochs "$4" --epochs "$4" --steps-per-epoch 50 --augment "$5" \
    --device "${DEVICE:-cuda}" --threads 1 --baseline "$6" ${EXTRA:-} \
    ${KEEP_MODELS:+--logo-keep "$2/models-$3"} >>"$2/logo-$3.log" 2>&1 \
    && echo "fold $7 done" || echo "fold $7 FAILED"' \
  "$PY" "$CORPUS" "$OUT" "$TAG" "$EPOCHS" "$AUGMENT" "$HERE/../src/voxwarden/models/default" {}
