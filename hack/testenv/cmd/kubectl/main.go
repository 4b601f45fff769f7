// Command kubectl is the upstream kubectl (k8s.io/kubectl/pkg/cmd) of the same
// Kubernetes release as the test control plane.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	// Honour -v/--v before the command is built (plugin lookup, kuberc parsing log too).
	_ = logs.GlogSetter(cmd.GetLogVerbosity(os.Args))
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
