#!/usr/bin/env bash
# What the test suite needs from the machine besides Python packages, installed when missing:
# Debian's chromium, which Playwright drives for the dashboard's end-to-end tests (no
# browser is downloaded). Run by `make test` (and so by CI).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium for the dashboard tests"
    sudo_=""
    if [ "$(id -u)" != 0 ]; then sudo_="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo_ apt-get update -q >/dev/null
    $sudo_ apt-get install -y -q chromium >/dev/null
fi
