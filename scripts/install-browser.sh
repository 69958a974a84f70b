#!/bin/sh
# Installs Debian's Chromium for the admin's browser tests (tests/browser/), once.
# Playwright drives this system binary; it never downloads its own browsers.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: /usr/bin/chromium is missing and we are not root; browser tests will be skipped" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
