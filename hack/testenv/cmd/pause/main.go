// Command pause is the pod sandbox process of the test node. No registry is
// reachable, so the usual pause image cannot be pulled; this one is built here
// (hack/image) from this static binary. It holds the pod's namespaces, reaps
// orphans (it is PID 1 when the pod shares its PID namespace) and exits on
// SIGINT/SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
