//go:build tools

// Package tools pins the promtool command that hack/promtool.sh builds, so
// that go.mod and go.sum record every module it needs.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
