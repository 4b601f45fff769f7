// Command kube-controller-manager is the upstream kube-controller-manager
// (k8s.io/kubernetes cmd/kube-controller-manager/app) built as a standalone
// binary for the test control plane. Garbage collection and namespace deletion
// need it: the apiserver alone never deletes dependents or namespace content.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
