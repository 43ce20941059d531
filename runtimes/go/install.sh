#!/bin/sh
# Veil Go build. STATIC: runs in the build sandbox (executor/docker_sandbox.py)
# as uid 10001 with no capabilities, never as an image build step. Inputs in
# /veil/in: src/ (the user's project), shim/ (Veil's), build-ca.crt (may be
# empty). Environment (validated by Veil): VEIL_CONTRACT (server | handler),
# VEIL_PACKAGE ("." or "./cmd/x"), VEIL_GOPROXY ("off" = standard library and
# vendor/ only). Output: /veil/out/server, a static binary (CGO_ENABLED=0).
set -eu
export GOPATH=/tmp/go GOMODCACHE=/tmp/go/pkg/mod GOCACHE=/tmp/go-cache \
       CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= GOPROXY="$VEIL_GOPROXY"
# The base image's warm build cache of the standard library (read-only there).
mkdir -p "$GOCACHE" /veil/out /veil/work
if [ -d /opt/veil/go-cache ]; then cp -R /opt/veil/go-cache/. "$GOCACHE"/; fi
if [ -s /veil/in/build-ca.crt ]; then export SSL_CERT_FILE=/veil/in/build-ca.crt; fi
if [ "$VEIL_CONTRACT" = handler ]; then
    (cd /tmp && go build -trimpath -o /tmp/veil-mainpkg /veil/in/shim/tools/mainpkg.go)
fi
cp -R /veil/in/src/. /veil/work/
cd /veil/work
if [ ! -s go.mod ]; then rm -f go.mod; go mod init veil.local/app; fi
if [ "$GOPROXY" != off ] && grep -Eq '^[[:space:]]*require([[:space:]]|\()' go.mod; then
    go mod download -x
fi
package="$VEIL_PACKAGE"
if [ "$VEIL_CONTRACT" = handler ]; then
    /tmp/veil-mainpkg .
    cp /veil/in/shim/veil_shim.go ./zz_veil_shim.go
    package=.
fi
vendor=
if [ -f vendor/modules.txt ]; then vendor=-mod=vendor; fi
go build $vendor -trimpath -ldflags='-s -w' -o /veil/out/server "$package"
