package testkit

import "flag"

// FuzzOnly reports whether this test binary runs a fuzz target and no
// test (`go test -run='^$' -fuzz=...`, as make fuzz does, and its fuzz
// workers): a TestMain then need not start the server its tests use.
// Call it after flag.Parse.
func FuzzOnly() bool {
	fuzz, run := flag.Lookup("test.fuzz"), flag.Lookup("test.run")
	return fuzz != nil && fuzz.Value.String() != "" && run != nil && run.Value.String() == "^$"
}
