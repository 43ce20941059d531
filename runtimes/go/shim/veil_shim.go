// Veil handler shim for Go. Copied next to the user's handler files and compiled
// together with them as `package main` (Veil rewrites the package clause of the
// root package, see tools/mainpkg.go); the user's package provides
//
//	func Handle(w http.ResponseWriter, r *http.Request)
//
// and this file provides main(): it serves Handle on 0.0.0.0:$PORT (default 8080)
// for every method and path, and shuts down gracefully on SIGTERM/SIGINT.
// A panic in Handle is recovered by net/http (logged, connection closed).
//
// Standard library only. Imports are file-scoped and the only package-level name
// declared here is main, so the user's package may use any other identifier.
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	server := &http.Server{
		Addr:              "0.0.0.0:" + port,
		Handler:           http.HandlerFunc(Handle),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	stopped := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
		<-signals
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			log.Printf("veil shim: shutdown: %v", err)
		}
		close(stopped)
	}()
	log.Printf("veil shim: serving Handle on %s", server.Addr)
	if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("veil shim: %v", err)
	}
	<-stopped
}
