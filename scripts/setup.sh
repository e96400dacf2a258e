#!/usr/bin/env bash
# Make the environment on a fresh machine: the Debian data/tools packages, then .venv with mmbind.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real speech for the digits world: synthetic voices (espeak-ng, flite, festival with voices made
# from human recordings) and the human recordings of the asterisk sound packages; the 70,000 real
# Fashion-MNIST images for recipes/fashion.toml. Data comes from packages, never from a download
# at run time.
DEBIAN_PACKAGES="espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
festvox-italp16k festvox-itapc16k festvox-ru asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav \
asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav \
dataset-fashion-mnist"
# Headless Chromium for the browser tests of `mmbind serve` (Playwright drives /usr/bin/chromium;
# browser builds are never downloaded).
DEBIAN_PACKAGES="$DEBIAN_PACKAGES chromium"
missing=""
for p in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Everything the tests need (the core plus every extra), at the torch versions CI tests.
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
# aeon only for the real BasicMotions IMU files inside its wheel (never imported); --no-deps
# keeps it from downgrading numpy.
.venv/bin/python -m pip install -q --no-deps aeon==1.6.0
# The explorer's chart library, from the npm registry at its locked version, copied into the
# Python package (mmbind/serve/static/vendor, not in git) so the page needs no network.
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
(cd frontend && npm ci --silent --no-audit --no-fund && npm run --silent build)
# ImageBind's own code, only for the tests that check mmbind against it (never imported by
# mmbind): its model and data modules, the pytorchvideo release it names and decord, the video
# decoder its data module uses. --no-deps: their pins (torch 1.13, ...) would replace the stack.
.venv/bin/python -m pip install -q --no-deps imagebind-packaged==0.1.2 pytorchvideo==0.1.5 decord==0.6.0
touch .venv/.installed
