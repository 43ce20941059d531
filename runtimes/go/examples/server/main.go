// Veil sample Go server: net/http on 0.0.0.0:$PORT, standard library only.
//
// Any request answers JSON {"hello": "veil", "runtime": "go", "method": ..., "path": ...};
// ?name=x changes the greeting.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"time"
)

func hello(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "veil"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"hello":   name,
		"runtime": "go",
		"method":  r.Method,
		"path":    r.URL.Path,
	})
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	server := &http.Server{
		Addr:              "0.0.0.0:" + port,
		Handler:           http.HandlerFunc(hello),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("listening on %s", server.Addr)
	log.Fatal(server.ListenAndServe())
}
