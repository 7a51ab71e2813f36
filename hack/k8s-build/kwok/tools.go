//go:build tools

// Package tools pins the kwok command that hack/k8s-binaries.sh builds, so
// that go.mod and go.sum record every module it needs.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
