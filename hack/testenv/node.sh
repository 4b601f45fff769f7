# The opt-in test node of hack/testenv (`up --node`, `TESTENV_NODE=1`): containerd
# (Debian's, with its own config, root, state and socket under target/testenv/node),
# kubelet, kube-scheduler and kube-proxy (iptables mode), a bridge CNI network
# on a private range, and a relay so pods reach the apiserver. Sourced by up
# and down after lib.sh; not run.
# shellcheck shell=bash

NODE_DIR="$TESTENV_DIR/node"
NODE_NAME="${TESTENV_NODE_NAME:-testenv-node}"
# Pod network: private range used only on this machine; the bridge's own
# address is the gateway, the node IP, and where pods reach host services.
TESTENV_POD_CIDR="${TESTENV_POD_CIDR:-10.244.0.0/24}"
TESTENV_BRIDGE="${TESTENV_BRIDGE:-testenv0}"
TESTENV_SCHEDULER_PORT="${TESTENV_SCHEDULER_PORT:-16259}"
NODE_GATEWAY="${TESTENV_POD_CIDR%.*/*}.1"
CONTAINERD_SOCK="$NODE_DIR/containerd/containerd.sock"
CNI_BIN_DIR="${TESTENV_CNI_BIN_DIR:-/usr/lib/cni}"
PAUSE_IMAGE="localhost/testenv/pause:1"
NODE_COMPONENTS=(containerd gateway-forward kubelet kube-scheduler kube-proxy)

# Executable of a node component (containerd comes from Debian, the rest from bin/).
node_exe() {
	case "$1" in
		containerd) command -v containerd ;;
		*) echo "$BIN_DIR/$1" ;;
	esac
}

# node_pid_of NAME: pid in run/NAME.pid if alive and NAME's executable, of any
# Kubernetes version (`down` stops whichever runs).
node_pid_of() {
	local name="$1" pid exe
	[[ "$name" == containerd ]] || { pid_of "$name"; return; }
	pid="$(cat "$RUN_DIR/$name.pid" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
	[[ "${exe% (deleted)}" == "$(readlink -f "$(node_exe containerd)")" ]] || return 1
	echo "$pid"
}

# node_running_pid NAME: as node_pid_of, and of the selected version.
node_running_pid() {
	local name="$1" pid exe
	pid="$(node_pid_of "$name")" || return 1
	exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
	[[ "${exe% (deleted)}" == "$(readlink -f "$(node_exe "$name")")" ]] || return 1
	echo "$pid"
}

ctr_node() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

node_ensure_packages() {
	ensure_cmd containerd containerd
	ensure_cmd runc runc
	ensure_cmd iptables iptables
	ensure_cmd ip iproute2
	ensure_cmd conntrack conntrack
	[[ -x "$CNI_BIN_DIR/bridge" ]] || {
		CNI_BIN_DIR=/usr/lib/cni
		ensure_cmd /usr/lib/cni/bridge containernetworking-plugins
	}
}

node_needs_build() {
	local b
	for b in kubelet kube-scheduler kube-proxy gateway-forward pause; do
		[[ -x "$BIN_DIR/$b" ]] || return 0
	done
	[[ ! -f "$BIN_DIR/.built-node" || -n "$(sources_newer_than "$BIN_DIR/.built-node")" ]]
}

node_write_config() {
	mkdir -p "$NODE_DIR"/{containerd/root,containerd/state,kubelet,cni/net.d,cni/ipam,pki}
	cat >"$NODE_DIR/containerd/config.toml" <<EOF
# containerd of the test node: own root, state and socket, so it cannot clash
# with any other containerd on this machine.
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # These machines do not allow lowering oom_score_adj (the kubelet asks -998
  # for sandboxes); keep it at containerd's own value instead of failing.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
	cat >"$NODE_DIR/cni/net.d/10-testenv.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "testenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$TESTENV_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$TESTENV_POD_CIDR", "gateway": "$NODE_GATEWAY" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
	cat >"$NODE_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The machines have cgroup v1 and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_GATEWAY
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $PKI_DIR/ca.crt }
authorization:
  mode: AlwaysAllow
clusterDomain: cluster.local
failSwapOn: false
# A test node on a shared disk: never evict or collect images for disk pressure.
evictionHard: { memory.available: "50Mi", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: ""
podLogsDir: $NODE_DIR/kubelet/pod-logs
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusReportFrequency: 10s
EOF
}

# Certificates and kubeconfigs of the node components (made once, like the rest).
node_write_pki() {
	local client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
	umask 077
	ensure_cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" "$client_ext"
	ensure_cert kube-scheduler ca "/CN=system:kube-scheduler" "$client_ext"
	ensure_cert kube-proxy ca "/CN=system:kube-proxy" "$client_ext"
	umask 022
	write_kubeconfig "$PKI_DIR/kubelet.kubeconfig" kubelet
	write_kubeconfig "$PKI_DIR/kube-scheduler.kubeconfig" kube-scheduler
	write_kubeconfig "$PKI_DIR/kube-proxy.kubeconfig" kube-proxy
}

# start_node_daemon NAME ARGS...: like start_daemon, for any executable.
start_node_daemon() {
	local name="$1"; shift
	{
		echo
		echo "=== $(date -u +%FT%TZ) starting $name"
	} >>"$LOG_DIR/$name.log"
	setsid "$(node_exe "$name")" "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- &
	echo $! >"$RUN_DIR/$name.pid"
	disown || true
	await_exec "$!" "$(readlink -f "$(node_exe "$name")")"
}

node_wait_for() {
	local name="$1" check="$2" deadline=$((SECONDS + TIMEOUT))
	until "$check"; do
		if ! node_running_pid "$name" >/dev/null; then
			log "$name exited; last log lines ($LOG_DIR/$name.log):"
			tail -n 30 "$LOG_DIR/$name.log" >&2 || true
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "$name not ready after ${TIMEOUT}s; last log lines ($LOG_DIR/$name.log):"
			tail -n 30 "$LOG_DIR/$name.log" >&2 || true
			exit 1
		fi
		sleep 0.5
	done
}

containerd_healthy() { ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }
scheduler_healthy() {
	[[ "$(curl -ksS --max-time 3 "https://127.0.0.1:$TESTENV_SCHEDULER_PORT/healthz" 2>/dev/null)" == ok ]]
}
proxy_healthy() { curl -fsS --max-time 3 "http://127.0.0.1:10256/healthz" >/dev/null 2>&1; }
node_ready() {
	[[ "$(kubectl_admin get node "$NODE_NAME" --request-timeout=5s \
		-o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
gateway_listening() { (exec 3<>"/dev/tcp/$NODE_GATEWAY/$TESTENV_APISERVER_PORT") 2>/dev/null; }

node_all_healthy() {
	local c
	for c in "${NODE_COMPONENTS[@]}"; do node_running_pid "$c" >/dev/null || return 1; done
	containerd_healthy && scheduler_healthy && proxy_healthy && node_ready
}

# The pause image is built here (no registry) from bin/pause and imported once.
node_ensure_pause_image() {
	ctr_node images ls -q 2>/dev/null | grep -qx "$PAUSE_IMAGE" && return 0
	"$REPO_ROOT/hack/image" pause --import >&2
}

node_up() {
	local t0=$SECONDS
	node_ensure_packages
	if node_needs_build; then
		((${no_build:-0})) && refuse_build "the test node (kubelet, kube-scheduler, kube-proxy)" " --node"
		"$TESTENV_SRC/build" --node-only >&2
	fi
	node_write_config
	node_write_pki

	# Kernel settings a node needs: routing between bridge and host, and bridged
	# traffic through iptables so Service NAT is undone on the way back.
	sysctl -qw net.ipv4.ip_forward=1
	sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "warning: no br_netfilter; pod-to-Service on the same bridge may fail"
	# The bridge exists before the first pod so the relay can bind its address.
	if ! ip link show "$TESTENV_BRIDGE" >/dev/null 2>&1; then
		ip link add "$TESTENV_BRIDGE" type bridge
	fi
	ip addr replace "$NODE_GATEWAY/${TESTENV_POD_CIDR#*/}" dev "$TESTENV_BRIDGE"
	ip link set "$TESTENV_BRIDGE" up

	if ! node_running_pid containerd >/dev/null; then
		log "starting containerd on $CONTAINERD_SOCK"
		start_node_daemon containerd --config "$NODE_DIR/containerd/config.toml"
	fi
	node_wait_for containerd containerd_healthy
	node_ensure_pause_image

	if ! node_running_pid gateway-forward >/dev/null; then
		log "relaying $NODE_GATEWAY:$TESTENV_APISERVER_PORT -> kube-apiserver"
		start_node_daemon gateway-forward --listen "$NODE_GATEWAY:$TESTENV_APISERVER_PORT" \
			--target "127.0.0.1:$TESTENV_APISERVER_PORT"
	fi
	node_wait_for gateway-forward gateway_listening

	# Who the node components are: the kubelet's group gets the built-in
	# system:node role (the apiserver runs RBAC only), and the `kubernetes`
	# Service points at the relay (the apiserver's own endpoint reconciler is
	# off: 127.0.0.1 is not a valid endpoint).
	kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: testenv:nodes
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node }
subjects:
  - { apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes-testenv
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: testenv
addressType: IPv4
endpoints:
  - addresses: ["$NODE_GATEWAY"]
    conditions: { ready: true }
ports:
  - { name: https, port: $TESTENV_APISERVER_PORT, protocol: TCP }
EOF

	if ! node_running_pid kube-scheduler >/dev/null; then
		log "starting kube-scheduler (health on https://127.0.0.1:$TESTENV_SCHEDULER_PORT)"
		start_node_daemon kube-scheduler \
			--kubeconfig="$PKI_DIR/kube-scheduler.kubeconfig" \
			--authentication-kubeconfig="$PKI_DIR/kube-scheduler.kubeconfig" \
			--authorization-kubeconfig="$PKI_DIR/kube-scheduler.kubeconfig" \
			--bind-address=127.0.0.1 --secure-port="$TESTENV_SCHEDULER_PORT" \
			--cert-dir="$NODE_DIR/scheduler-serving" --leader-elect=false
	fi
	if ! node_running_pid kube-proxy >/dev/null; then
		log "starting kube-proxy (iptables mode)"
		start_node_daemon kube-proxy \
			--kubeconfig="$PKI_DIR/kube-proxy.kubeconfig" \
			--proxy-mode=iptables \
			--hostname-override="$NODE_NAME" \
			--cluster-cidr="$TESTENV_POD_CIDR" \
			--bind-address="$NODE_GATEWAY" \
			--healthz-bind-address=127.0.0.1:10256 \
			--metrics-bind-address=127.0.0.1:10249 \
			--conntrack-max-per-core=0
	fi
	if ! node_running_pid kubelet >/dev/null; then
		log "starting kubelet (node $NODE_NAME, IP $NODE_GATEWAY)"
		start_node_daemon kubelet \
			--config="$NODE_DIR/kubelet/config.yaml" \
			--kubeconfig="$PKI_DIR/kubelet.kubeconfig" \
			--root-dir="$NODE_DIR/kubelet/root" \
			--cert-dir="$NODE_DIR/kubelet/pki" \
			--hostname-override="$NODE_NAME" \
			--node-ip="$NODE_GATEWAY"
	fi
	node_wait_for kube-scheduler scheduler_healthy
	node_wait_for kube-proxy proxy_healthy
	node_wait_for kubelet node_ready
	# The kubelet registers with the not-ready taint; the node lifecycle
	# controller that would lift it is off (see up), so lift it once Ready.
	kubectl_admin taint node "$NODE_NAME" node.kubernetes.io/not-ready- >/dev/null 2>&1 || true
	# A test that stopped while it had the node cordoned must not leave it so.
	kubectl_admin uncordon "$NODE_NAME" >/dev/null 2>&1 || true
	log "node $NODE_NAME Ready in $((SECONDS - t0))s (pods on $TESTENV_POD_CIDR, host services at $NODE_GATEWAY)"
}

# Stops every node process (pods first, so no container outlives the node),
# then undoes what node_up did to the machine when purging.
node_down() {
	local purge="$1" name pid
	for name in kubelet kube-proxy kube-scheduler gateway-forward; do
		if pid="$(node_pid_of "$name")"; then
			log "stopping $name (pid $pid)"
			stop_pid "$pid" "$name"
		fi
		rm -f "$RUN_DIR/$name.pid"
	done
	if pid="$(node_pid_of containerd)"; then
		# Every container and sandbox of this containerd, then containerd itself.
		local t
		for t in $(ctr_node tasks ls -q 2>/dev/null); do
			ctr_node tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
		done
		sleep 1
		for t in $(ctr_node tasks ls -q 2>/dev/null); do
			ctr_node tasks delete -f "$t" >/dev/null 2>&1 || true
		done
		log "stopping containerd (pid $pid)"
		stop_pid "$pid" containerd
	fi
	rm -f "$RUN_DIR/containerd.pid"
	# Shims of our containerd (they outlive it by design): found by its socket.
	local p
	for p in /proc/[0-9]*; do
		if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $CONTAINERD_SOCK "; then
			log "stopping containerd shim ${p#/proc/}"
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	node_unmount
	if ((purge)); then
		local proxy
		proxy="$(node_any_kube_proxy)"
		if [[ -n "$proxy" ]] && iptables -t nat -S KUBE-SERVICES >/dev/null 2>&1; then
			log "removing kube-proxy's iptables chains"
			"$proxy" --cleanup >/dev/null 2>&1 || true
		fi
		node_remove_kubelet_chains
		if ip link show "$TESTENV_BRIDGE" >/dev/null 2>&1; then
			ip link del "$TESTENV_BRIDGE" || true
		fi
		rm -rf "$NODE_DIR"
	fi
}

# A built kube-proxy for --cleanup: the selected version's, else any other
# (the chains may be those of another version's node).
node_any_kube_proxy() {
	local p
	for p in "$BIN_DIR/kube-proxy" "$BIN_ROOT"/*/kube-proxy; do
		[[ -x "$p" ]] && { echo "$p"; return 0; }
	done
	return 0
}

# Every mount under the node directory, deepest first (kubelet volumes,
# container root filesystems, sandbox shm, kubelet's own rshared bind mount).
node_unmount() {
	[[ -d "$NODE_DIR" ]] || return 0
	local m
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount $m"
	done < <(awk -v d="$NODE_DIR" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	# Network namespaces of sandboxes that were killed rather than stopped
	# (CNI names them cni-*; only this node runs a CRI runtime here).
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do
		ip netns pids "$ns" 2>/dev/null | grep -q . && continue
		ip netns del "$ns" 2>/dev/null || true
	done
}

# The kubelet's own iptables chains (kube-proxy --cleanup leaves them).
node_remove_kubelet_chains() {
	local table chain
	while iptables -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
	while iptables -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
	for table in filter nat mangle; do
		for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
			if iptables -t "$table" -F "$chain" 2>/dev/null; then iptables -t "$table" -X "$chain" 2>/dev/null || true; fi
		done
	done
}
