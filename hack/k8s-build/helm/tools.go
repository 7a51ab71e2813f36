//go:build tools

// Package tools pins the helm command that hack/k8s-binaries.sh builds, so
// that go.mod and go.sum record every module it needs.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
