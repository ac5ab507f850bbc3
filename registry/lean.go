//go:build lean

package registry

import (
	"fmt"
	"net/url"

	"github.com/registrator/registrator/bridge"
)

// Lean is whether this build leaves out the adapters built on gRPC (etcd
// and skydns2, through the etcd v3 client): the etcd client, gRPC and
// their package initialisation are about a third of the full build's
// idle memory (docs/performance.md). A lean build hands a URI of theirs to
// the full build beside it (HeldByFull).
const Lean = true

func openEtcd(u *url.URL, _ bridge.BackendOptions) (bridge.Backend, error) {
	return nil, fmt.Errorf("%s:// is served by the full build, not this lean one", u.Scheme)
}

var openSkyDNS2 = openEtcd
