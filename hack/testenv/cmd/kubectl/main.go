// Command kubectl is the upstream kubectl (k8s.io/kubectl/pkg/cmd) of the same
// Kubernetes release as the test control plane.
//
// Unlike upstream kubectl, when KUBECONFIG is unset it defaults to the test
// control plane's kubeconfig (../kubeconfig next to the bin directory holding
// this binary, i.e. target/testenv/kubeconfig), so target/testenv/bin/kubectl
// talks to the test cluster without further setup. An explicit KUBECONFIG or
// --kubeconfig still wins.
package main

import (
	"os"
	"path/filepath"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	defaultKubeconfig()
	// Honour -v/--v before the command is built (plugin lookup and kuberc parsing log too).
	_, _ = logs.GlogSetter(cmd.GetLogVerbosity(os.Args))
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}

func defaultKubeconfig() {
	if os.Getenv("KUBECONFIG") != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	p := filepath.Join(filepath.Dir(filepath.Dir(exe)), "kubeconfig")
	if _, err := os.Stat(p); err == nil {
		_ = os.Setenv("KUBECONFIG", p)
	}
}
