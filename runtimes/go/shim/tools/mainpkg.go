// Command veil-mainpkg turns the Go package in one directory into `package main`
// so that Veil's handler shim (veil_shim.go, which provides main) compiles with it.
//
// Usage: veil-mainpkg DIR
//
// For every regular, non-test .go file directly in DIR, the identifier of the
// package clause is replaced by `main`; nothing else in the file changes. The
// clause is found with go/scanner, so comments and build constraints before it
// are skipped exactly as the compiler skips them. Standard library only; Veil
// builds it once per base image, in a layer of its own.
package main

import (
	"fmt"
	"go/scanner"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: veil-mainpkg DIR")
		os.Exit(2)
	}
	entries, err := os.ReadDir(os.Args[1])
	if err != nil {
		fail(err)
	}
	for _, entry := range entries {
		name := entry.Name()
		if !entry.Type().IsRegular() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if err := rewrite(filepath.Join(os.Args[1], name)); err != nil {
			fail(err)
		}
	}
}

func rewrite(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	file := fset.AddFile(path, -1, len(src))
	var bad error
	var s scanner.Scanner
	s.Init(file, src, func(pos token.Position, msg string) {
		if bad == nil {
			bad = fmt.Errorf("%s: %s", pos, msg)
		}
	}, 0)
	if _, tok, _ := s.Scan(); tok != token.PACKAGE {
		return firstError(bad, fmt.Errorf("%s: the file does not start with a package clause", path))
	}
	pos, tok, name := s.Scan()
	if tok != token.IDENT {
		return firstError(bad, fmt.Errorf("%s: the package clause has no name", path))
	}
	if name == "main" {
		return nil
	}
	offset := file.Offset(pos)
	out := make([]byte, 0, len(src))
	out = append(out, src[:offset]...)
	out = append(out, "main"...)
	out = append(out, src[offset+len(name):]...)
	return os.WriteFile(path, out, 0o644)
}

func firstError(scanErr, err error) error {
	if scanErr != nil {
		return scanErr
	}
	return err
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "veil-mainpkg: %v\n", err)
	os.Exit(1)
}
