// Package rawbody hands a caller the undecoded body of a response that a
// client library would otherwise decode in full.
//
// The Docker and Consul clients decode every field of a list into their own
// types; a daemon that reads the same long list every second pays more for
// that than for anything else it does. With a Transport under the
// library's HTTP client, a request made with a context from Into has its
// successful (200) body read into the caller's Buffer, and the library is
// handed a placeholder ("[]", "{}") to decode instead. Everything else the
// library does (building the request, negotiating versions, turning error
// statuses into errors) is left to it.
package rawbody

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
)

// Buffer receives a body. Keep one and pass it to every call, so that its
// memory is reused.
type Buffer struct {
	bytes.Buffer
	placeholder string
	got         bool
}

// Got says whether the last request made with Into(ctx, b, ...) had its
// body read into b: false when the library's HTTP client does not go
// through a Transport, or the answer was not a 200.
func (b *Buffer) Got() bool { return b.got }

type key struct{}

// Into marks ctx so that the body of a 200 answer to a request made with it
// through a Transport is read into buf, and the library reads placeholder
// instead. One request at a time per Buffer.
func Into(ctx context.Context, buf *Buffer, placeholder string) context.Context {
	buf.Reset()
	buf.got = false
	buf.placeholder = placeholder
	return context.WithValue(ctx, key{}, buf)
}

// Transport is an http.RoundTripper that serves Into.
type Transport struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Base.RoundTrip(req)
	buf, ok := req.Context().Value(key{}).(*Buffer)
	if err != nil || !ok || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		buf.Reset()
		return nil, err
	}
	buf.got = true
	resp.Body = io.NopCloser(strings.NewReader(buf.placeholder))
	resp.ContentLength = int64(len(buf.placeholder))
	resp.Header.Del("Content-Length")
	return resp, nil
}
