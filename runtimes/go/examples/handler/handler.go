// Package handler is a Veil Go handler: no main, no server, just Handle.
// Veil's shim serves it on 0.0.0.0:$PORT (see runtimes/go/shim/veil_shim.go).
package handler

import (
	"encoding/json"
	"io"
	"net/http"
)

// Handle answers every request: GET greets (?name=x), POST echoes the body length.
func Handle(w http.ResponseWriter, r *http.Request) {
	reply := map[string]any{"runtime": "go", "contract": "handler", "method": r.Method, "path": r.URL.Path}
	switch r.Method {
	case http.MethodGet:
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		reply["hello"] = name
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		reply["body_length"] = len(body)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}
