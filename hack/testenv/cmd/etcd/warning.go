//go:build kube1.34

package main

import "go.etcd.io/etcd/server/v3/embed"

// etcd 3.6 (Kubernetes 1.34 on): NewConfig may leave the slow-request
// threshold at 0, which logs every request as "expensive".
func setRequestWarning(cfg *embed.Config) {
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
}
