// Package shorten cuts strings for registries' limits and for logs.
package shorten

import "unicode/utf8"

// To shortens s to at most n bytes without splitting a rune.
func To(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
