package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			io.WriteString(w, "ok\n")
		case "/slow":
			<-r.Context().Done() // until the client gives up
		default:
			http.Error(w, "archive unavailable", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{srv.URL + "/healthz"}, 0},
		{[]string{srv.URL + "/readyz"}, 1},
		{[]string{"-timeout", "200ms", srv.URL + "/slow"}, 1},
		{[]string{closedURL + "/healthz"}, 1},
		{[]string{"-nonsense"}, 2},
	} {
		if got := run(tc.args, io.Discard); got != tc.want {
			t.Errorf("run(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}
