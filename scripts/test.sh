#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, type checks and all tests.
# Works on a fresh Debian machine (as root, or with sudo) and on a developer laptop.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "warning: promtool/prometheus not found and apt-get unavailable; those tests will skip" >&2
  fi
  # The Debian package starts a Prometheus service we do not need; tests run their own.
  { $SUDO systemctl stop prometheus || $SUDO service prometheus stop || true; } >/dev/null 2>&1
fi

# Headless Chromium renders the /targets page in its test; openssl makes test certificates.
if ! command -v chromium >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium openssl >/dev/null
  else
    echo "warning: chromium/openssl not found and apt-get unavailable; those tests will skip" >&2
  fi
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
python3 -m ruff check exporter mixin tests bench
python3 -m ruff format --check exporter mixin tests bench
echo "== mypy"
python3 -m mypy
echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
