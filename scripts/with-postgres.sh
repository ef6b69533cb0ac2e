#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster: start it, export its URL as
# CREDITOPS_TEST_POSTGRES_URL (and its folder as CREDITOPS_TEST_POSTGRES_DIR), run
# the command, stop the cluster whatever the command's outcome; exit with the command's status.
#
#   scripts/with-postgres.sh .venv/bin/pytest
#
# A URL already in CREDITOPS_TEST_POSTGRES_URL is used as is (nothing is started).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [[ -n ${CREDITOPS_TEST_POSTGRES_URL:-} ]]; then
    exec "$@"
fi

dir=$(mktemp -d /tmp/creditops-pg.XXXXXX)
cleanup() { "$here/postgres.sh" stop "$dir" || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

url=$("$here/postgres.sh" start "$dir")
echo "with-postgres: PostgreSQL at $url" >&2
export CREDITOPS_TEST_POSTGRES_URL=$url
export CREDITOPS_TEST_POSTGRES_DIR=$dir
status=0
"$@" || status=$?
exit $status
