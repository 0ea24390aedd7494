#!/usr/bin/env bash
# Makes this machine ready for `make test` and `make sim`: Debian packages, the pinned venv, and the
# micropython-modbus test peer. Idempotent: a second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_debs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_debs+=(mosquitto)
command -v socat >/dev/null 2>&1 || need_debs+=(socat)
command -v openssl >/dev/null 2>&1 || need_debs+=(openssl)
# the web pages' browser tests (host_tests/integration/test_webui_mp.py): Debian's Chromium and its driver
[ -x /usr/bin/chromium ] || need_debs+=(chromium)
[ -x /usr/bin/chromedriver ] || need_debs+=(chromium-driver)
if [ ${#need_debs[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_debs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
  # the Debian package starts a system broker; the tests run their own on free ports
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

stamp="$VENV/.requirements-stamp"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s tools/requirements-host.txt "$stamp"; then
  echo "setup: creating $VENV with pinned host packages"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tools/requirements-host.txt
  cp tools/requirements-host.txt "$stamp"
fi

"$VENV/bin/python" tools/fetch_peer.py
