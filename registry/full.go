//go:build !lean

package registry

import (
	"github.com/registrator/registrator/registry/etcd"
	"github.com/registrator/registrator/registry/skydns2"
)

// Lean is whether this build leaves out the adapters built on gRPC (etcd
// and skydns2, through the etcd v3 client): a build with the lean tag,
// which hands a URI of theirs to the full build beside it (HeldByFull).
const Lean = false

var (
	openEtcd    = adapter(etcd.Open)
	openSkyDNS2 = adapter(skydns2.Open)
)
