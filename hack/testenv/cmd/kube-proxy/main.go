// Command kube-proxy is the upstream kube-proxy (k8s.io/kubernetes
// cmd/kube-proxy/app), run in iptables mode on the test node so ClusterIP
// Services (including `kubernetes`) reach their pods.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() {
	os.Exit(cli.Run(app.NewProxyCommand()))
}
