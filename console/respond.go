package console

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}: the console API's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func parseUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// decodeBody decodes a JSON body of at most limit bytes into v,
// refusing unknown fields. An empty body is allowed when optional. It
// reports whether the request may go on; when not, it has answered 400.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64, optional bool) bool {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case err == nil:
		if dec.More() {
			writeError(w, http.StatusBadRequest, "malformed JSON body: more than one value")
			return false
		}
		return true
	case optional && errors.Is(err, io.EOF):
		return true
	}
	writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
	return false
}

func parseLimit(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > 10000 {
		return 0, errors.New("limit must be between 1 and 10000")
	}
	return n, nil
}

// queryDetail is a query string as the audit record keeps it: JSON of
// its parameters, in key order.
func queryDetail(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range q {
		m[k] = strings.Join(v, ",")
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func randomID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
