#!/usr/bin/env bash
# Polyglot client tests: calls a real portone-facade (started here with
# --sandbox on a free loopback port) from Python and Node through stubs made
# from proto/ (every file there), and decodes its google.rpc error details.
# The tests learn the embedded sandbox's URL (SANDBOX_URL) from the facade's
# start-up log, to pay orders through it as a buyer would.
#
#   scripts/polyglot-test.sh
#
# Env:
#   FACADE_BIN        the facade binary (default: $CARGO_TARGET_DIR/debug/portone-facade;
#                     build it with `cargo build --bin portone-facade`)
#   CARGO_TARGET_DIR  default $HOME/.cache/portone-facade/target
#   PYTHON            interpreter that makes the venv (default python3, >= 3.9)
#   STARTUP_TIMEOUT   seconds to wait for the port (default 20)
#
# Dependencies are pinned in tests/polyglot/python/requirements.txt and
# tests/polyglot/node/package-lock.json and installed outside the repo:
# a venv in $HOME/.cache/portone-facade/polyglot-venv and npm's cache in
# $HOME/.cache/portone-facade/npm-cache (node_modules/ is gitignored).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$HOME/.cache/portone-facade"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
FACADE_BIN="${FACADE_BIN:-$CARGO_TARGET_DIR/debug/portone-facade}"
PYTHON="${PYTHON:-python3}"
STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-20}"
VENV="$CACHE/polyglot-venv"
NPM_CACHE="$CACHE/npm-cache"
PY_DIR="$ROOT/tests/polyglot/python"
NODE_DIR="$ROOT/tests/polyglot/node"

log() { printf 'polyglot-test: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ -x "$FACADE_BIN" ]] || die "facade binary '$FACADE_BIN' not found or not executable; build it with
  (cd '$ROOT' && CARGO_TARGET_DIR='$CARGO_TARGET_DIR' cargo build --bin portone-facade)
or set FACADE_BIN"
command -v node >/dev/null || die "node not found (Node >= 20 is needed)"
command -v npm >/dev/null || die "npm not found"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/polyglot-test.XXXXXX")"
SERVER_PIDS=()
stop_server() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  local rc=$? pid logfile
  for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
  if [[ $rc -ne 0 ]] && compgen -G "$WORK/*.log" >/dev/null; then
    for logfile in "$WORK"/*.log; do
      log "last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
    done
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- Python deps
mkdir -p "$CACHE"
REQ="$PY_DIR/requirements.txt"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when requirements.txt changed.
REQ_SUM="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$REQ_SUM" ]]; then
  log "installing $REQ"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$REQ_SUM" > "$VENV/.requirements.sha256"
fi

# ---------------------------------------------------------------- Node deps
LOCK_SUM="$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$NODE_DIR/node_modules/.lock.sha256" 2>/dev/null || true)" != "$LOCK_SUM" ]]; then
  log "npm ci in $NODE_DIR"
  (cd "$NODE_DIR" && npm ci --cache "$NPM_CACHE" --no-audit --no-fund --loglevel=error)
  echo "$LOCK_SUM" > "$NODE_DIR/node_modules/.lock.sha256"
fi

# ---------------------------------------------------------------- the facades
free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_facade NAME PORT [ENV=value ...]: a --sandbox facade on 127.0.0.1:PORT,
# its output in $WORK/NAME.log; waits until it accepts connections.
start_facade() {
  local name=$1 port=$2 pid rc=0
  shift 2
  log "starting $name: $* $FACADE_BIN --sandbox --listen-addr 127.0.0.1:$port"
  env RUST_LOG="${RUST_LOG:-info}" "$@" "$FACADE_BIN" --sandbox --listen-addr "127.0.0.1:$port" \
    >"$WORK/$name.log" 2>&1 &
  pid=$!
  SERVER_PIDS+=("$pid")
  local deadline=$((SECONDS + STARTUP_TIMEOUT))
  until "$VENV/bin/python" - "$port" <<'EOF' 2>/dev/null
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
EOF
  do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || rc=$?; die "$name exited (status $rc) before accepting connections"; }
    (( SECONDS < deadline )) || die "$name did not accept connections on port $port within ${STARTUP_TIMEOUT}s"
    sleep 0.2
  done
  log "$name is up on 127.0.0.1:$port (pid $pid)"
}

PORT="$(free_port)"
export FACADE_ADDR="127.0.0.1:$PORT"
start_facade facade "$PORT"

# The same facade behind mutual TLS (DESIGN §8), with a CA, a server
# certificate and two client certificates made now by scripts/dev-certs, and
# a policy: checkout may call all of PaymentPrepareService, billing only
# GetPreparedPayment.
export FACADE_CERTS_DIR="$WORK/certs"
export FACADE_CHECKOUT_ID="spiffe://cluster.local/ns/checkout/sa/checkout"
export FACADE_BILLING_ID="billing.payments.svc"
"$ROOT/scripts/dev-certs" "$FACADE_CERTS_DIR" "$FACADE_CHECKOUT_ID" "$FACADE_BILLING_ID" >&2
cat >"$WORK/policy.json" <<EOF
{"callers": [
  {"identity": "$FACADE_CHECKOUT_ID", "allow": ["portone.facade.v1.PaymentPrepareService/*"]},
  {"identity": "$FACADE_BILLING_ID", "allow": ["portone.facade.v1.PaymentPrepareService/GetPreparedPayment"]}
]}
EOF
TLS_PORT="$(free_port)"
export FACADE_TLS_ADDR="127.0.0.1:$TLS_PORT"
start_facade mtls-facade "$TLS_PORT" \
  TLS_CERT_FILE="$FACADE_CERTS_DIR/server.crt" TLS_KEY_FILE="$FACADE_CERTS_DIR/server.key" \
  TLS_CLIENT_CA_FILE="$FACADE_CERTS_DIR/ca.crt" AUTHZ_POLICY_FILE="$WORK/policy.json"

# The embedded sandbox's URL, for the tests that stand in for a buyer
# (POST $SANDBOX_URL/__sandbox/payments): the facade logs it at start, in
# the `url` field of its "using the embedded PortOne sandbox" line.
SANDBOX_URL="$("$VENV/bin/python" - "$WORK/facade.log" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if str(entry.get("message", "")).startswith("using the embedded PortOne sandbox") and entry.get("url"):
        print(entry["url"])
        break
EOF
)"
[[ -n "$SANDBOX_URL" ]] || die "the facade's log has no sandbox url line"
export SANDBOX_URL
log "sandbox is at $SANDBOX_URL"

# ---------------------------------------------------------------- tests
failed=0

log "Python tests"
py_rc=0
(cd "$PY_DIR" && "$VENV/bin/python" -m pytest -q --junitxml="$WORK/python.xml") || py_rc=$?
read -r py_pass py_fail < <("$VENV/bin/python" - "$WORK/python.xml" <<'EOF' || echo "0 0"
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 0); sys.exit(0)
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skip = sum(int(s.get("skipped", 0)) for s in suites)
print(t - bad - skip, bad)
EOF
)
if [[ $py_rc -ne 0 ]]; then log "Python tests FAILED (pytest exit $py_rc)"; failed=1; fi
if [[ "$py_pass" -eq 0 ]]; then log "Python: no test passed"; failed=1; fi

log "Node tests"
node_rc=0
(cd "$NODE_DIR" && node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$WORK/node.tap" \
  test/facade.test.js test/mtls.test.js) || node_rc=$?
node_pass="$(sed -n 's/^# pass \([0-9]\+\)$/\1/p' "$WORK/node.tap" 2>/dev/null | tail -n1)"
node_fail="$(sed -n 's/^# fail \([0-9]\+\)$/\1/p' "$WORK/node.tap" 2>/dev/null | tail -n1)"
node_pass="${node_pass:-0}"; node_fail="${node_fail:-0}"
if [[ $node_rc -ne 0 ]]; then log "Node tests FAILED (node --test exit $node_rc)"; failed=1; fi
if [[ "$node_pass" -eq 0 ]]; then log "Node: no test passed"; failed=1; fi
# A run that failed without counting a failure (crash, load error) still counts one.
if [[ $node_rc -ne 0 && "$node_fail" -eq 0 ]]; then node_fail=1; fi
if [[ $py_rc -ne 0 && "$py_fail" -eq 0 ]]; then py_fail=1; fi

for pid in "${SERVER_PIDS[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then log "a facade (pid $pid) died during the tests"; failed=1; fi
done

log "Python: $py_pass passed, $py_fail failed; Node: $node_pass passed, $node_fail failed"
echo "polyglot: $((py_pass + node_pass)) passed, $((py_fail + node_fail)) failed"
[[ $failed -eq 0 ]] || die "see above"
