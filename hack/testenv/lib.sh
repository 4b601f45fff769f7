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
PKI_DIR="$TESTENV_DIR/pki"
LOG_DIR="$TESTENV_DIR/logs"
RUN_DIR="$TESTENV_DIR/run"
ETCD_DATA_DIR="$TESTENV_DIR/etcd"
# the Kubernetes minor whose apiserver wrote the etcd data (see up)
ETCD_VERSION_FILE="$TESTENV_DIR/etcd.kube-version"
KUBECONFIG_PATH="$TESTENV_DIR/kubeconfig"

TESTENV_APISERVER_PORT="${TESTENV_APISERVER_PORT:-16443}"
TESTENV_ETCD_CLIENT_PORT="${TESTENV_ETCD_CLIENT_PORT:-12379}"
TESTENV_ETCD_PEER_PORT="${TESTENV_ETCD_PEER_PORT:-12380}"
TESTENV_KCM_PORT="${TESTENV_KCM_PORT:-16257}"
TESTENV_SERVICE_CIDR="${TESTENV_SERVICE_CIDR:-10.96.0.0/24}"

COMPONENTS=(etcd kube-apiserver kube-controller-manager)

# Binaries stay in the repo's target/ even when TESTENV_DIR moves the state:
# one directory per Kubernetes minor (kube/<minor>/), so switching versions
# rebuilds nothing; helm does not depend on the version and is built once.
# `up` links $TESTENV_DIR/bin to the directory of the version it runs.
BIN_ROOT="$(readlink -m "$REPO_ROOT/target/testenv/kube")"
HELM_DIR="$(readlink -m "$REPO_ROOT/target/testenv/helm")"
# the single directory of binaries before there was one per version
LEGACY_BIN_DIR="$(readlink -m "$REPO_ROOT/target/testenv/bin")"

# Kubernetes minors that have a Go module (versions/<minor>/go.mod), oldest first.
KUBE_VERSIONS=()
while read -r v; do KUBE_VERSIONS+=("$v"); done < <(
	find "$TESTENV_SRC/versions" -mindepth 2 -maxdepth 2 -name go.mod -printf '%h\n' |
		xargs -n1 basename | sort -t. -k1,1n -k2,2n)
((${#KUBE_VERSIONS[@]})) || die "no Kubernetes version in $TESTENV_SRC/versions"

# testenv_exe NAME PID: the executable of PID when it is a testenv build of
# NAME (any version), else fails. Guards against pid reuse.
testenv_exe() {
	local name="$1" pid="$2" exe
	pid_alive "$pid" || return 1
	exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
	exe="${exe% (deleted)}"
	case "$exe" in
		"$BIN_ROOT"/*/"$name" | "$LEGACY_BIN_DIR/$name" | "$BIN_DIR/$name") echo "$exe" ;;
		*) return 1 ;;
	esac
}

# pid_of NAME: pid recorded in run/NAME.pid, if that process is alive and is a
# testenv build of NAME (of any version: `down` stops whichever runs).
pid_of() {
	local pid
	pid="$(cat "$RUN_DIR/$1.pid" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	testenv_exe "$1" "$pid" >/dev/null || return 1
	echo "$pid"
}

# running_version: the minor of the control plane running in TESTENV_DIR.
running_version() {
	local name pid exe
	for name in "${COMPONENTS[@]}"; do
		pid="$(pid_of "$name")" || continue
		exe="$(testenv_exe "$name" "$pid")" || continue
		if [[ "$exe" == "$BIN_ROOT"/*/"$name" ]]; then
			exe="${exe#"$BIN_ROOT"/}"
			echo "${exe%/*}"
			return 0
		fi
	done
	return 1
}

# KUBE_VERSION selects the release: a minor (1.33), optionally with the
# patch of its module (1.33.13) and a leading v. Unset: the version of the
# control plane running in TESTENV_DIR (so restart, tests and the demo follow
# it), else KUBE_DEFAULT_VERSION: the release the whole test suite runs on in CI.
KUBE_DEFAULT_VERSION=1.36
KUBE_VERSION="${KUBE_VERSION:-$(running_version || echo "$KUBE_DEFAULT_VERSION")}"
KUBE_MINOR="${KUBE_VERSION#v}"
[[ "$KUBE_MINOR" =~ ^(1\.[0-9]+)(\.[0-9]+)?$ ]] || die "KUBE_VERSION=$KUBE_VERSION: expected a minor such as ${KUBE_VERSIONS[-1]}"
KUBE_MINOR="${BASH_REMATCH[1]}"
KUBE_MODFILE="$TESTENV_SRC/versions/$KUBE_MINOR/go.mod"
[[ -f "$KUBE_MODFILE" ]] || die "KUBE_VERSION=$KUBE_VERSION: no module for it in $TESTENV_SRC/versions (there: ${KUBE_VERSIONS[*]}; add one with hack/testenv/versions/gen $KUBE_MINOR)"
# the release pinned by the module, e.g. v1.33.13
KUBE_RELEASE="$(sed -n 's/^\tk8s\.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$KUBE_MODFILE")"
if [[ -n "${BASH_REMATCH[2]}" && "v$KUBE_MINOR${BASH_REMATCH[2]}" != "$KUBE_RELEASE" ]]; then
	die "KUBE_VERSION=$KUBE_VERSION: the module of $KUBE_MINOR pins $KUBE_RELEASE (another patch: hack/testenv/versions/gen ${KUBE_VERSION#v})"
fi
# resolved, as /proc/PID/exe is, to which running_pid compares it
BIN_DIR="$(readlink -m "${TESTENV_BIN_DIR:-$BIN_ROOT/$KUBE_MINOR}")"

# sources_newer_than FILE: prints a build input of the selected version (the
# shared cmd/ sources, its module, the build script) newer than FILE, if any.
sources_newer_than() {
	find "$TESTENV_SRC/cmd" "${KUBE_MODFILE%/*}" "$TESTENV_SRC/build" \
		\( -name '*.go' -o -name go.mod -o -name go.sum -o -name build \) -newer "$1" -print -quit
}

# kube_at_least MINOR: the selected release is MINOR (e.g. 1.33) or newer.
kube_at_least() {
	local want="${1#1.}" have="${KUBE_MINOR#1.}"
	((have >= want))
}

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

# pid of a component started by `up`, if it is still alive and is that
# binary of the selected version.
running_pid() {
	local pid exe
	pid="$(pid_of "$1")" || return 1
	exe="$(testenv_exe "$1" "$pid")" || return 1
	[[ "$exe" == "$BIN_DIR/$1" ]] || return 1
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
