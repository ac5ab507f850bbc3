package rawbody

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIntoTakesTheBodyAndLeavesTheLibraryThePlaceholder(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, `{"message":"no such thing"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[{"Id":"a"},{"Id":"b"}]`)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &Transport{Base: http.DefaultTransport}}

	get := func(ctx context.Context, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	var buf Buffer
	for range 2 { // the buffer is reused
		code, lib := get(Into(context.Background(), &buf, "[]"), "/list")
		if code != http.StatusOK || lib != "[]" {
			t.Errorf("the library read %d %q, want 200 %q", code, lib, "[]")
		}
		var got []struct{ Id string }
		if !buf.Got() || json.Unmarshal(buf.Bytes(), &got) != nil || len(got) != 2 {
			t.Errorf("the caller got %v %q, want the list", buf.Got(), buf.String())
		}
	}

	// An error status stays the library's to turn into an error.
	code, lib := get(Into(context.Background(), &buf, "[]"), "/missing")
	if code != http.StatusNotFound || lib != "{\"message\":\"no such thing\"}\n" || buf.Got() || buf.Len() != 0 {
		t.Errorf("404: library read %d %q, buffer %v %q; want the error untouched and nothing taken", code, lib, buf.Got(), buf.String())
	}

	// Requests without the mark pass through.
	if code, lib := get(context.Background(), "/list"); code != http.StatusOK || lib != `[{"Id":"a"},{"Id":"b"}]` {
		t.Errorf("unmarked request: %d %q", code, lib)
	}
}
