#!/usr/bin/env bash
# Rebuild the bundled example clips (needs Debian packages: ffmpeg espeak-ng asterisk-core-sounds-en-g722).
set -euo pipefail
cd "$(dirname "$0")/audio"
S=/usr/share/asterisk/sounds/en_US_f_Allison
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ffmpeg -v error -y -i $S/privacy-prompt.g722 -ar 16000 -ac 1 human-allison-prompt.flac
ffmpeg -v error -y -i $S/vm-forward-multiple.g722 -ar 16000 -ac 1 -c:a libmp3lame -b:a 48k human-allison-voicemail.mp3
ffmpeg -v error -y -f lavfi -i color=c=darkblue:s=160x120:d=4 -i $S/vm-forward-multiple.g722 -shortest \
  -c:v libx264 -pix_fmt yuv420p -c:a aac -b:a 48k human-allison-video.mp4
espeak-ng -v en-us -s 150 -w "$tmp/a.wav" "Hello, this is your bank calling. Please confirm your account number and the code we just sent to your phone."
ffmpeg -v error -y -i "$tmp/a.wav" -ar 16000 -c:a aac -b:a 48k espeak-bank-call.m4a
espeak-ng -v en-gb+f3 -s 140 -w "$tmp/b.wav" "Good evening everyone, welcome to the live room. Tonight we will talk about music and travel."
ffmpeg -v error -y -i "$tmp/b.wav" -c:a libopus -b:a 24k espeak-live-room.ogg
