#!/usr/bin/env bash
# Installs the Debian packages stemsplit needs (ffmpeg for musdb/museval and mp3/mp4 decoding;
# the synth corpus tools for `stemsplit synth`). Safe to rerun; skips apt when everything is present.
set -euo pipefail
PACKAGES=(ffmpeg libfluidsynth3 fluid-soundfont-gm festival festvox-kallpc16k festvox-kdlpc16k hydrogen-drumkits)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
