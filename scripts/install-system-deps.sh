#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages stemsplit uses. Safe to rerun: does nothing when they are present.
#
#   bash scripts/install-system-deps.sh           # ffmpeg: decoding mp3/m4a/mp4 and musdb's .stem.mp4 (~60 MB)
#   bash scripts/install-system-deps.sh --synth   # + what `stemsplit synth` renders with: fluidsynth, a GM
#                                                 #   soundfont, festival and two voices, Hydrogen drum kits (~375 MB)
#   bash scripts/install-system-deps.sh --test    # + --synth + chromium and its driver (the web page's browser test)
#
# Runs apt-get directly as root, through sudo otherwise.
set -euo pipefail

BASE=(ffmpeg)
SYNTH=(libfluidsynth3 fluid-soundfont-gm festival festvox-kallpc16k festvox-kdlpc16k hydrogen-drumkits)
BROWSER=(chromium chromium-driver)

packages=("${BASE[@]}")
for arg in "$@"; do
  case "$arg" in
    --synth) packages+=("${SYNTH[@]}") ;;
    --test) packages+=("${SYNTH[@]}" "${BROWSER[@]}") ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-system-deps.sh: unknown option $arg (use --synth, --test or nothing)" >&2; exit 2 ;;
  esac
done

missing=()
for p in $(printf '%s\n' "${packages[@]}" | awk '!seen[$0]++'); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps.sh: no apt-get here; install these with your package manager: ${missing[*]}" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-system-deps.sh: installing ${missing[*]} needs root, and sudo is not installed;" \
         "run this script as root" >&2
    exit 1
  fi
fi
echo "installing: ${missing[*]}" >&2
${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
