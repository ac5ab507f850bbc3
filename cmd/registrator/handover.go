package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/registrator/registrator/registry"
)

// fullBuild is the file name, beside a lean build (the image's
// /bin/registrator), of the build with every adapter.
const fullBuild = "registrator-full"

// handOver replaces this process with the full build beside it, with the
// same arguments and environment, when this is a lean build and a registry
// URI names an adapter it leaves out (registry.HeldByFull). It returns nil
// when there is nothing to hand over, and an error only when the exec
// failed: then this process goes on no further.
func handOver(uris, args []string) error {
	for _, uri := range uris {
		if !registry.HeldByFull(uri) {
			continue
		}
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%s is served by %s, and this program's own path is unknown: %v", backendName(uri), fullBuild, err)
		}
		full := filepath.Join(filepath.Dir(self), fullBuild)
		err = syscall.Exec(full, append([]string{full}, args...), os.Environ())
		return fmt.Errorf("%s is served by %s, which should be beside this lean build (%s): %v", backendName(uri), fullBuild, self, err)
	}
	return nil
}
