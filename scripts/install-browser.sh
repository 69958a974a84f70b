#!/bin/sh
# Installs Debian's Chromium for the admin's browser tests (tests/browser/), once; `make test` runs it.
# Playwright drives this system binary and never downloads browsers of its own.
# If it cannot be installed (no root, no network), say so and carry on: the browser tests then skip
# with that reason instead of the whole suite failing.
set -u

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
if ! { $SUDO apt-get update && $SUDO apt-get install -y chromium; }; then
    echo "install-browser: could not install chromium with apt-get; browser tests will be skipped" >&2
fi
exit 0
