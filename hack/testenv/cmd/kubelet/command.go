//go:build kube1.34

package main

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

// From 1.34 on the kubelet command takes the context it runs in.
func newKubeletCommand() *cobra.Command {
	return app.NewKubeletCommand(context.Background())
}
