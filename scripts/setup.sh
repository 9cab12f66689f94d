#!/usr/bin/env bash
# Installs what Prognos needs on a Debian or Ubuntu machine: Mosquitto, InfluxDB, PostgreSQL and Chromium
# (the dashboard's browser tests) from the distribution, and a virtualenv in .venv with the
# project and its extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${PROGNOS_EXTRAS:-edge,cloud,desk,dashboard,dev}"
packages=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || packages+=(mosquitto)
have influxd || packages+=(influxdb)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || have postgres || packages+=(postgresql)  # the desk's server
have chromium || packages+=(chromium)  # the browser of the dashboard tests (Playwright drives it)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
have python3 || packages+=(python3)

if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Prognos needs Python 3.11 or newer; python3 is {sys.version.split()[0]}")
PY

stamp=".venv/.prognos-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing Python packages into .venv ($extras)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  echo "$want" > "$stamp"
fi
