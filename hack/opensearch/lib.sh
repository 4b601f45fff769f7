# Shared by hack/opensearch/{build,up,down}; sourced, not run. State and logs
# live under target/opensearch (OPENSEARCH_DIR).
# shellcheck shell=bash
# The paths and settings are read by the scripts that source this file.
# shellcheck disable=SC2034
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=opensearch
# shellcheck source=hack/lib.sh
source "$HERE/../lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
OPENSEARCH_DIR="${OPENSEARCH_DIR:-$ROOT/target/opensearch}"
OPENSEARCH_PORT="${OPENSEARCH_PORT:-19200}"
OPENSEARCH_TRANSPORT_PORT="${OPENSEARCH_TRANSPORT_PORT:-$((OPENSEARCH_PORT + 100))}"
OPENSEARCH_HEAP="${OPENSEARCH_HEAP:-512m}"
PID_FILE="$OPENSEARCH_DIR/node.pid"
LOG_FILE="$OPENSEARCH_DIR/node.log"
URL="http://127.0.0.1:$OPENSEARCH_PORT"

running_pid() {
	local pid
	[[ -f "$PID_FILE" ]] || return 1
	pid="$(cat "$PID_FILE")"
	pid_alive "$pid" || return 1
	echo "$pid"
}
