#!/bin/sh
# Veil Python dependency install. STATIC: runs in the build sandbox
# (executor/docker_sandbox.py) as uid 10001 with no capabilities, never as a
# build step. Inputs in /veil/in: requirements.txt (non-empty), build-ca.crt
# (may be empty). Output: the venv /opt/veil/venv (a size-capped tmpfs), which
# the image build copies in, sanitised, at the same path.
set -eu
python3 -m venv --without-pip /opt/veil/venv
if [ -s /veil/in/build-ca.crt ]; then export PIP_CERT=/veil/in/build-ca.crt; fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
       PIP_PROGRESS_BAR=off PIP_ROOT_USER_ACTION=ignore
# The base image's pip installs into the new venv (pip >= 22.3 has --python).
exec python3 -m pip --python /opt/veil/venv/bin/python install -r /veil/in/requirements.txt
