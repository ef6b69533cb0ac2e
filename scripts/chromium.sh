#!/usr/bin/env bash
# Print the path of a headless-capable Chromium, installing Debian's `chromium`
# package first when none is found (the dashboard's browser test needs one).
#
#   scripts/chromium.sh          # e.g. /usr/bin/chromium
#
# CREDITOPS_TEST_CHROMIUM, when set, is used as is. Installing needs root and apt-get.
set -euo pipefail

die() { echo "chromium.sh: $*" >&2; exit 1; }

if [[ -n ${CREDITOPS_TEST_CHROMIUM:-} ]]; then
    [[ -x $CREDITOPS_TEST_CHROMIUM ]] || die "CREDITOPS_TEST_CHROMIUM=$CREDITOPS_TEST_CHROMIUM is not an executable"
    echo "$CREDITOPS_TEST_CHROMIUM"
    exit 0
fi

find_chromium() {
    local name
    for name in chromium chromium-browser google-chrome chrome; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if ! find_chromium >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "Chromium is not installed and installing it needs root (apt-get install chromium)"
    command -v apt-get >/dev/null || die "Chromium is not installed and there is no apt-get to install it"
    echo "chromium.sh: installing Chromium from Debian packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
find_chromium || die "Chromium was installed but no chromium binary is on PATH"
