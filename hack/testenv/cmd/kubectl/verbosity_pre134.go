//go:build !kube1.34

package main

// presetVerbosity: before 1.34 kubectl sets its verbosity while it parses flags.
func presetVerbosity() {}
