#!/bin/sh
# Veil Node.js dependency install. STATIC: runs in the build sandbox
# (executor/docker_sandbox.py) as uid 10001 with no capabilities, never as a
# build step, so lifecycle scripts of the project and its dependencies run
# contained. Inputs in /veil/in: package.json (non-empty), package-lock.json and
# build-ca.crt (either may be empty). Output: /app/node_modules (/app is a
# size-capped tmpfs), copied into the image, sanitised, at the same path.
# `npm ci` when a lock file exists (exactly what it pins), else `npm install`;
# never devDependencies.
set -eu
cd /app
cp /veil/in/package.json package.json
if [ -s /veil/in/build-ca.crt ]; then
    export NODE_EXTRA_CA_CERTS=/veil/in/build-ca.crt npm_config_cafile=/veil/in/build-ca.crt
fi
export npm_config_cache=/tmp/npm-cache npm_config_update_notifier=false \
       npm_config_fund=false npm_config_audit=false
if [ -s /veil/in/package-lock.json ]; then
    cp /veil/in/package-lock.json package-lock.json
    npm ci --omit=dev
else
    npm install --omit=dev
fi
mkdir -p node_modules
