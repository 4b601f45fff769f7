# Shared by hack/opensearch/{build,up,down}. State and logs live under
# target/opensearch (OPENSEARCH_DIR).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OPENSEARCH_DIR="${OPENSEARCH_DIR:-$ROOT/target/opensearch}"
OPENSEARCH_PORT="${OPENSEARCH_PORT:-19200}"
OPENSEARCH_TRANSPORT_PORT="${OPENSEARCH_TRANSPORT_PORT:-$((OPENSEARCH_PORT + 100))}"
OPENSEARCH_HEAP="${OPENSEARCH_HEAP:-512m}"
PID_FILE="$OPENSEARCH_DIR/node.pid"
LOG_FILE="$OPENSEARCH_DIR/node.log"
URL="http://127.0.0.1:$OPENSEARCH_PORT"

log() { printf '[opensearch] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
pid_alive() { kill -0 "$1" 2>/dev/null; }
running_pid() {
	local pid
	[[ -f "$PID_FILE" ]] || return 1
	pid="$(cat "$PID_FILE")"
	pid_alive "$pid" || return 1
	echo "$pid"
}
