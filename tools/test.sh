#!/usr/bin/env bash
# The project's checks, as `make test` and CI run them: lint, architecture contracts, then the
# test suite against SQLite and a real Neo4j 5.26 started here (tools/neo4j) and stopped after.
# Extra arguments go to pytest. Without java/mvn the Neo4j tests skip, except with CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/lint-imports" --no-cache

work=$(mktemp -d)
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    tools/neo4j/neo4j-embedded stop --pidfile "$work/neo4j.pid" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

set +e
tools/neo4j/neo4j-embedded start --port "$port" --data "$work/neo4j" \
    --pidfile "$work/neo4j.pid" --log "$work/neo4j.log"
rc=$?
set -e
if [ "$rc" -eq 0 ]; then
    export EVOCDSS_TEST_NEO4J_URL="bolt://127.0.0.1:$port"
elif [ "$rc" -eq 3 ] && [ "${CI:-}" != "true" ]; then
    export EVOCDSS_TEST_NEO4J_SKIP="java/javac/mvn missing: Neo4j tests skipped (see tools/neo4j/README.md)"
else
    echo "Neo4j did not start (exit $rc); see the lines above" >&2
    exit 1
fi

"$VENV/bin/python" -m pytest "$@"
