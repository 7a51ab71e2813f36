// Command coredns is CoreDNS with only the plugins the local cluster's real
// node needs: cluster.local names from the API server, nothing forwarded.
//
// NB: no forward, no hosts, no etcd: the test harness must never send a
// query off the machine, so a name outside the cluster gets no answer but
// REFUSED (no server block serves its zone).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// Each import registers one plugin with CoreDNS's setup machinery.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives is the order a query passes through the registered plugins
// (the upstream order, restricted to the imports above).
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
