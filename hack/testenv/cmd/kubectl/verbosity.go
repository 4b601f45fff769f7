//go:build kube1.34

package main

import (
	"os"

	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
)

// presetVerbosity honours -v/--v before the command is built (plugin lookup
// and kuberc parsing log too), as upstream kubectl does from 1.34 on.
func presetVerbosity() {
	_, _ = logs.GlogSetter(cmd.GetLogVerbosity(os.Args))
}
