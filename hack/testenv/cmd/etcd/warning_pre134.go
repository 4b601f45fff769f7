//go:build !kube1.34

package main

import "go.etcd.io/etcd/server/v3/embed"

// etcd 3.5 (Kubernetes 1.32 and 1.33): NewConfig sets its thresholds.
func setRequestWarning(*embed.Config) {}
