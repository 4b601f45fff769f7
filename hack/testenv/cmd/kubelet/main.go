// Command kubelet is the upstream kubelet (k8s.io/kubernetes cmd/kubelet/app)
// built as a standalone binary for the opt-in test node (`up --node`).
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
)

func main() {
	os.Exit(cli.Run(newKubeletCommand()))
}
