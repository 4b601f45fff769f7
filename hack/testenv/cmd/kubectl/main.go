// Command kubectl is the upstream kubectl (k8s.io/kubectl/pkg/cmd) of the same
// Kubernetes release as the test control plane.
//
// Unlike upstream kubectl, when KUBECONFIG is unset it defaults to the test
// control plane's kubeconfig (target/testenv/kubeconfig, beside the bin
// directory it is run from), so target/testenv/bin/kubectl talks to the test
// cluster without further setup. An explicit KUBECONFIG or --kubeconfig still wins.
package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	defaultKubeconfig()
	presetVerbosity()
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}

func defaultKubeconfig() {
	if os.Getenv("KUBECONFIG") != "" {
		return
	}
	for _, p := range kubeconfigCandidates() {
		if _, err := os.Stat(p); err == nil {
			_ = os.Setenv("KUBECONFIG", p)
			return
		}
	}
}

// kubeconfigCandidates: ../kubeconfig of the directory this binary was
// invoked through (target/testenv/bin links to the running release's
// directory, and the kubeconfig of that TESTENV_DIR is beside the link), then
// that of where the binary really is (target/testenv/kube/<minor>/, two levels
// below target/testenv).
func kubeconfigCandidates() []string {
	var out []string
	invoked := os.Args[0]
	if !strings.ContainsRune(invoked, filepath.Separator) {
		invoked, _ = exec.LookPath(invoked)
	}
	if abs, err := filepath.Abs(invoked); err == nil && invoked != "" {
		out = append(out, filepath.Join(filepath.Dir(filepath.Dir(abs)), "kubeconfig"))
	}
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		out = append(out, filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(exe))), "kubeconfig"))
	}
	return out
}
