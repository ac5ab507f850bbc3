package bridge

import (
	"maps"
	"slices"
)

// Plan returns the entries to write and the entries to remove so that actual
// becomes equal to desired. Services are matched by ID; an entry whose
// Revision equals the desired service's Fingerprint and whose Owner is owner
// is unchanged and is not written again; a service written over an entry
// with another owner mark names that mark in Replaces. The result is in a
// stable order.
func Plan(owner string, desired, actual []Service) (register, deregister []Service) {
	return plan(owner, desired, fingerprints(desired), actual)
}

// plan is Plan with the desired services' fingerprints computed already.
func plan(owner string, desired []Service, revs []string, actual []Service) (register, deregister []Service) {
	want := make(map[string]Service, len(desired))
	rev := make(map[string]string, len(desired))
	for i, s := range desired {
		want[s.ID] = s
		rev[s.ID] = revs[i]
	}
	have := make(map[string]Service, len(actual))
	for _, s := range actual {
		have[s.ID] = s
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		s := want[id]
		if a, ok := have[id]; !ok || a.Owner != owner || a.Revision != rev[id] {
			if ok && a.Owner != "" && a.Owner != owner {
				s.Replaces = a.Owner // an adopted entry: its earlier mark goes
			}
			register = append(register, s)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[id]; !ok {
			deregister = append(deregister, have[id])
		}
	}
	return register, deregister
}

// fingerprints is the Fingerprint of each service.
func fingerprints(services []Service) []string {
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s.Fingerprint()
	}
	return out
}
