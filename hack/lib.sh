# Shell helpers shared by the scripts under hack/ and by .ci/run; sourced, not run.
# shellcheck shell=bash

# log/die prefix their lines with LOG_PREFIX, the name of the script family.
log() { printf '[%s] %s\n' "${LOG_PREFIX:-hack}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# true while pid exists and is not a zombie (daemons are reparented, and
# whoever reaps them may do so late).
pid_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
	[[ -n "$state" && "$state" != Z ]]
}

# stop_pidfile FILE: SIGTERM the process FILE names, wait up to 5 s, remove FILE.
stop_pidfile() {
	local f=$1 pid
	[[ -f $f ]] || return 0
	pid=$(cat "$f")
	if pid_alive "$pid"; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
	fi
	rm -f "$f"
}

# ensure_debs PKG...: installs the Debian packages that are not installed yet
# (one `apt-get update` for all). The scripts run as root on a plain Debian
# machine; nothing is to be installed by hand.
ensure_debs() {
	local need=() p sudo=""
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
	((${#need[@]})) || return 0
	[[ "$(id -u)" == 0 ]] || sudo="sudo"
	log "installing Debian packages: ${need[*]}"
	if ! { $sudo apt-get update -qq >&2 &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null; }; then
		die "could not install ${need[*]}"
	fi
}

# ensure_cmd CMD [PKG]: installs Debian package PKG (default CMD) when CMD is missing.
ensure_cmd() {
	command -v "$1" >/dev/null 2>&1 || ensure_debs "${2:-$1}"
}
