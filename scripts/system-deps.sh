#!/usr/bin/env bash
# Install the Debian packages voxwarden's recipes, tests and demo use, if any are missing.
# Runtime decoding needs none of them (PyAV bundles FFmpeg); espeak-ng/ffmpeg make test fixtures and
# examples; festival/flite/klettres/asterisk sounds feed the training corpus recipe; chromium prints
# the assessment report to PDF (headless) and poppler-utils (pdftoppm/pdftotext) lets the tests check it.
set -euo pipefail
PKGS="ffmpeg espeak-ng sox festival flite asterisk-core-sounds-en-g722 asterisk-core-sounds-en-wav klettres-data"
PKGS="$PKGS chromium poppler-utils"
PKGS="$PKGS ${VOXWARDEN_EXTRA_DEBS:-}"
missing=()
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "missing Debian packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
