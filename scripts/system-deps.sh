#!/usr/bin/env bash
# What the test suite needs from the machine besides Python packages, installed when missing:
# Debian's chromium, which Playwright drives for the dashboard's end-to-end tests (no
# browser is downloaded), and PostgreSQL's server binaries, from which the storage tests start
# a throwaway cluster of their own (tests/pg_support.py), and Debian's nats-server, the message
# broker (with JetStream) that the distributed roles' tests start on loopback
# (tests/nats_support.py). Run by `make test` (and so by CI).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]} for the tests"
    sudo_=""
    if [ "$(id -u)" != 0 ]; then sudo_="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo_ apt-get update -q >/dev/null
    $sudo_ apt-get install -y -q "${missing[@]}" >/dev/null
fi
