# Shared settings of hack/testenv/{build,up,down}; sourced, not run.
# shellcheck shell=bash
# The paths and port settings are read by the scripts that source this file.
# shellcheck disable=SC2034

TESTENV_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=testenv
# shellcheck source=hack/lib.sh
source "$TESTENV_SRC/../lib.sh"
REPO_ROOT="$(cd "$TESTENV_SRC/../.." && pwd)"
TESTENV_DIR="${TESTENV_DIR:-$REPO_ROOT/target/testenv}"
# binaries stay in the repo's target/ even when TESTENV_DIR moves the state
BIN_DIR="${TESTENV_BIN_DIR:-$REPO_ROOT/target/testenv/bin}"
PKI_DIR="$TESTENV_DIR/pki"
LOG_DIR="$TESTENV_DIR/logs"
RUN_DIR="$TESTENV_DIR/run"
ETCD_DATA_DIR="$TESTENV_DIR/etcd"
KUBECONFIG_PATH="$TESTENV_DIR/kubeconfig"

TESTENV_APISERVER_PORT="${TESTENV_APISERVER_PORT:-16443}"
TESTENV_ETCD_CLIENT_PORT="${TESTENV_ETCD_CLIENT_PORT:-12379}"
TESTENV_ETCD_PEER_PORT="${TESTENV_ETCD_PEER_PORT:-12380}"
TESTENV_KCM_PORT="${TESTENV_KCM_PORT:-16257}"
TESTENV_SERVICE_CIDR="${TESTENV_SERVICE_CIDR:-10.96.0.0/24}"

COMPONENTS=(etcd kube-apiserver kube-controller-manager)

# await_exec PID EXE: a daemon just launched is, for a moment, still the shell
# (then setsid) that starts it. Wait until it has become EXE or died, so that a
# health loop checking /proc/PID/exe does not take "not started yet" for
# "exited" (seen on a loaded CI machine: gateway-forward reported dead at birth).
await_exec() {
	local pid="$1" want="$2" exe
	for _ in $(seq 1 200); do
		pid_alive "$pid" || return 0
		exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
		[[ "$exe" == "$want" || "$exe" == "$want (deleted)" ]] && return 0
		sleep 0.05
	done
}

# pid of a component started by `up`, if it is still alive and is that binary.
running_pid() {
	local name="$1" pidfile="$RUN_DIR/$1.pid" pid exe
	[[ -f "$pidfile" ]] || return 1
	pid="$(cat "$pidfile" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
	# guard against pid reuse: the process must be our binary
	[[ "$exe" == "$BIN_DIR/$name" || "$exe" == "$BIN_DIR/$name (deleted)" ]] || return 1
	echo "$pid"
}

# stop_pid PID NAME: SIGTERM, wait up to 20s, then SIGKILL.
stop_pid() {
	local pid="$1" name="$2"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		pid_alive "$pid" || return 0
		sleep 0.2
	done
	log "$name did not exit after 20s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	while pid_alive "$pid"; do sleep 0.1; done
}

kubectl_admin() {
	KUBECONFIG="$KUBECONFIG_PATH" "$BIN_DIR/kubectl" "$@"
}

# Serialises up/down across processes (test binaries may call up concurrently).
# The lock fd is closed for the daemons (see start_daemon), so it is released
# when the script exits.
take_lock() {
	mkdir -p "$RUN_DIR"
	exec 9>"$RUN_DIR/lock"
	flock 9
}
