#!/usr/bin/env bash
# The container image, really run. Base images cannot be pulled on our
# machines, so this assembles the runtime image that the Dockerfile's last
# stage describes with `buildah from scratch` (the release binary at the same
# path, the shared libraries it links and their loader at their same paths,
# the CA certificates, /etc/passwd and /etc/group with nonroot = 65532, the
# same user, port, entrypoint, env and labels), runs it with podman under the
# chart's container securityContext (read-only root, all capabilities
# dropped, uid/gid 65532, no-new-privileges, default seccomp), on loopback
# only, and checks it:
#   - the assembled image and the Dockerfile agree on user, entrypoint, port,
#     path, env and labels; the chart's securityContext is what it runs under;
#   - `portone-facade healthcheck` inside the container says SERVING, and so
#     does the Dockerfile's HEALTHCHECK command;
#   - a real grpcurl call on `--sandbox` answers;
#   - the process runs as 65532 with no capabilities, NoNewPrivs, a seccomp
#     filter and a read-only root; it stops cleanly on SIGTERM.
# Every wait is bounded (podman and buildah calls under `timeout`, the
# readiness loop by tries and seconds). Each check prints `pass:` or `fail:`; the last line is
# `image: N passed, M failed`, and the exit status is non-zero if any failed.
#
# Usage: scripts/check-image.sh [RELEASE_BINARY]
#   default: $CARGO_TARGET_DIR/release/portone-facade, built (or found fresh)
#   with `cargo build --release --locked --bin portone-facade`.
# Needs podman, buildah, runc (scripts/install-image-tools.sh, which also
# writes the config under ~/.cache/portone-facade/image) and grpcurl
# (scripts/install-tools.sh). Runs as root (rootful podman, cgroupfs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What the chart, the README and the Dockerfile promise.
EXPECT_USER="65532:65532"
EXPECT_ENTRYPOINT='["/usr/local/bin/portone-facade"]'
EXPECT_PATH="/usr/local/bin/portone-facade"
EXPECT_PORT="50051/tcp"
CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
# The distroless base's own config, which the Dockerfile inherits.
BASE_PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_SSL_ENV="SSL_CERT_FILE=$CA_BUNDLE"

cache="${PORTONE_FACADE_CACHE:-$HOME/.cache/portone-facade}"
conf_dir="$cache/image"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
export PATH="$cache/tools/bin:$PATH"
export CONTAINERS_CONF="$conf_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$conf_dir/storage.conf"

die() { echo "check-image: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (rootful podman with runc and cgroupfs)"
for tool in podman buildah runc grpcurl python3 ldd sha256sum timeout; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-image-tools.sh, scripts/install-tools.sh)"
done
[ -f "$CONTAINERS_CONF" ] && [ -f "$CONTAINERS_STORAGE_CONF" ] \
  || die "no container config in $conf_dir: run scripts/install-image-tools.sh"
[ -f "$CA_BUNDLE" ] || die "$CA_BUNDLE missing (apt-get install ca-certificates)"

# An array, not a function, so that `timeout` can run it.
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "pass: $*"; }
fail() { failed=$((failed + 1)); echo "fail: $*"; }
check() { # DESCRIPTION GOT WANT
  if [ "$2" = "$3" ]; then pass "$1: $2"; else fail "$1: got '$2', want '$3'"; fi
}
json_norm() { # a JSON value in one canonical line
  python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1]), separators=(",", ":")))' "$1" 2>/dev/null \
    || echo "unparsable JSON: $1"
}

# --- the release binary ----------------------------------------------------------
if [ $# -ge 1 ]; then
  bin="$1"
else
  bin="$CARGO_TARGET_DIR/release/portone-facade"
  echo "check-image: cargo build --release --locked --bin portone-facade (target dir $CARGO_TARGET_DIR)"
  cargo build --release --locked --bin portone-facade
fi
[ -x "$bin" ] || die "no executable release binary at $bin"

# --- the Dockerfile's last stage -------------------------------------------------
# Continuation lines joined, comments dropped, from the final FROM onward.
final_stage="$(awk '
  /^[[:space:]]*#/ { next }
  { line = cont $0 }
  /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); cont = line " "; next }
  { cont = ""; print line }
' Dockerfile | awk '{ a[NR] = $0 } toupper($1) == "FROM" { last = NR } END { for (i = last; i <= NR; i++) print a[i] }')"
[ -n "$final_stage" ] || die "no FROM in Dockerfile"
instr() { # NAME -> the arguments of every NAME instruction of the last stage
  sed -n "s/^[[:space:]]*$1[[:space:]]\{1,\}//Ip" <<<"$final_stage"
}
one() { # NAME -> the arguments of the only (or last, as Docker keeps) NAME
  local v
  v="$(instr "$1" | tail -n 1)"
  [ -n "$v" ] || die "the Dockerfile's last stage has no $1"
  printf '%s' "$v" | sed 's/[[:space:]]*$//'
}
# ARG defaults of the last stage, for ${NAME} in ENV and LABEL.
declare -A args=()
while read -r a; do
  [ -n "$a" ] || continue
  case "$a" in *=*) args["${a%%=*}"]="${a#*=}" ;; *) args["$a"]="" ;; esac
done < <(instr ARG)
expand() {
  local s="$1" k
  for k in "${!args[@]}"; do s="${s//\$\{$k\}/${args[$k]}}"; done
  printf '%s' "$s"
}
kv_pairs() { # `k="v" k2=v2 ...` -> lines `k<TAB>v`
  local s="$1" re_q='^[[:space:]]*([A-Za-z0-9_.-]+)="([^"\\]*)"(.*)$' re_u='^[[:space:]]*([A-Za-z0-9_.-]+)=([^[:space:]"]*)(.*)$'
  while [[ $s =~ [^[:space:]] ]]; do
    if [[ $s =~ $re_q ]] || [[ $s =~ $re_u ]]; then
      printf '%s\t%s\n' "${BASH_REMATCH[1]}" "$(expand "${BASH_REMATCH[2]}")"
      s="${BASH_REMATCH[3]}"
    else
      die "cannot parse key=value pairs in the Dockerfile: $s"
    fi
  done
}

df_from="$(one FROM)"
df_user="$(one USER)"
df_expose="$(one EXPOSE)"
case "$df_expose" in */*) ;; *) df_expose="$df_expose/tcp" ;; esac
df_entrypoint="$(one ENTRYPOINT)"
[[ $df_entrypoint == \[* ]] || die "ENTRYPOINT is not in exec (JSON) form: $df_entrypoint"
df_entrypoint="$(json_norm "$df_entrypoint")"
copies="$(instr COPY)"
[ "$(grep -c . <<<"$copies")" = 1 ] || die "expected one COPY in the last stage, found: $copies"
df_path="$(awk '{ print $NF }' <<<"$copies")"
df_healthcheck="$(one HEALTHCHECK | sed -n 's/.*[[:space:]]CMD[[:space:]]\{1,\}//p')"
[[ $df_healthcheck == \[* ]] || die "HEALTHCHECK CMD is not in exec (JSON) form"
mapfile -t df_env < <(instr ENV | while IFS= read -r l; do kv_pairs "$l"; done)
mapfile -t df_labels < <(instr LABEL | while IFS= read -r l; do kv_pairs "$l"; done)
echo "check-image: Dockerfile last stage: FROM $df_from, USER $df_user, EXPOSE $df_expose, ENTRYPOINT $df_entrypoint, binary at $df_path, ${#df_env[@]} ENV, ${#df_labels[@]} LABEL"

# --- clean-up of everything this run makes ----------------------------------------
run_id="$$-$(date +%s)"
image="localhost/portone-facade:image-check-$run_id"
ctr="portone-facade-image-check-$run_id"
work=""
rootfs="$(mktemp -d "${TMPDIR:-/tmp}/portone-facade-image.XXXXXX")"
cleanup() {
  set +e
  timeout 60 "${PODMAN[@]}" rm -f -t 0 "$ctr" >/dev/null 2>&1
  [ -n "$work" ] && timeout 60 buildah rm "$work" >/dev/null 2>&1
  timeout 60 "${PODMAN[@]}" rmi -f "$image" >/dev/null 2>&1
  rm -rf "$rootfs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- assemble, from scratch --------------------------------------------------------
# The root filesystem is staged in a directory and copied in as one layer:
# every file at the path the binary and the loader look for it (symlinks
# resolved, as distroless ships them as files).
stage_file() { # HOST_FILE IMAGE_PATH MODE
  install -D -m "$3" "$(readlink -f "$1")" "$rootfs$2"
}
stage_file "$bin" "$df_path" 0755
mapfile -t libs < <(ldd "$bin" | awk '/=>/ { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }')
[ "${#libs[@]}" -gt 0 ] || die "ldd found no shared libraries in $bin (a static binary needs no loader; adjust this script)"
for lib in "${libs[@]}"; do stage_file "$lib" "$lib" 0755; done
stage_file "$CA_BUNDLE" "$CA_BUNDLE" 0644
mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/home/nonroot"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot"
printf '%s\n' "root:x:0:0:root:/root:/sbin/nologin" \
  "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin" \
  "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" >"$rootfs/etc/passwd"
printf '%s\n' "root:x:0:" "nobody:x:65534:" "nonroot:x:65532:" >"$rootfs/etc/group"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
echo "check-image: staged $df_path, ${#libs[@]} shared libraries (${libs[*]}), $CA_BUNDLE, /etc/passwd, /etc/group"

work="$(timeout 60 buildah from scratch)"
timeout 300 buildah copy --quiet "$work" "$rootfs/" / >/dev/null
config=(--user "$df_user" --entrypoint "$df_entrypoint" --port "$df_expose"
  --env "$BASE_PATH_ENV" --env "$BASE_SSL_ENV" --workingdir /
  --label "io.portone-facade.assembled-by=scripts/check-image.sh (buildah from scratch)")
for kv in "${df_env[@]}"; do config+=(--env "${kv%%$'\t'*}=${kv#*$'\t'}"); done
for kv in "${df_labels[@]}"; do config+=(--label "${kv%%$'\t'*}=${kv#*$'\t'}"); done
timeout 60 buildah config "${config[@]}" "$work"
timeout 300 buildah commit --quiet --rm "$work" "$image" >/dev/null
work=""
echo "check-image: assembled $image"

# --- the image agrees with the Dockerfile ---------------------------------------------
inspect_image() { timeout 30 "${PODMAN[@]}" image inspect --format "$1" "$image"; }
img_user="$(inspect_image '{{.Config.User}}')"
img_entrypoint="$(json_norm "$(inspect_image '{{json .Config.Entrypoint}}')")"
img_ports="$(inspect_image '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' | sed 's/ $//')"
img_env="$(inspect_image '{{range .Config.Env}}{{println .}}{{end}}')"
img_labels="$(inspect_image '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{println}}{{end}}')"

check "user: Dockerfile USER" "$df_user" "$EXPECT_USER"
check "user: image Config.User" "$img_user" "$df_user"
check "entrypoint: Dockerfile ENTRYPOINT" "$df_entrypoint" "$(json_norm "$EXPECT_ENTRYPOINT")"
check "entrypoint: image Config.Entrypoint" "$img_entrypoint" "$df_entrypoint"
check "port: Dockerfile EXPOSE" "$df_expose" "$EXPECT_PORT"
check "port: image Config.ExposedPorts" "$img_ports" "$df_expose"
check "path: Dockerfile COPY destination" "$df_path" "$EXPECT_PATH"
check "path: the entrypoint runs the copied binary" "$(json_norm "[\"$df_path\"]")" "$img_entrypoint"
missing_env=()
for kv in "${df_env[@]}"; do
  grep -qxF -- "${kv%%$'\t'*}=${kv#*$'\t'}" <<<"$img_env" || missing_env+=("${kv%%$'\t'*}")
done
grep -qxF -- "$BASE_PATH_ENV" <<<"$img_env" || missing_env+=(PATH)
if [ "${#df_env[@]}" -gt 0 ] && [ "${#missing_env[@]}" = 0 ]; then
  pass "env: the image has the Dockerfile's ENV (${df_env[*]%%$'\t'*}) and PATH with /usr/local/bin"
else
  fail "env: missing or different in the image: ${missing_env[*]:-the Dockerfile has no ENV}"
fi
missing_labels=()
for kv in "${df_labels[@]}"; do
  grep -qxF -- "${kv%%$'\t'*}=${kv#*$'\t'}" <<<"$img_labels" || missing_labels+=("${kv%%$'\t'*}")
done
if [ "${#df_labels[@]}" -gt 0 ] && [ "${#missing_labels[@]}" = 0 ]; then
  pass "labels: the image has the Dockerfile's ${#df_labels[@]} labels"
else
  fail "labels: missing or different in the image: ${missing_labels[*]:-the Dockerfile has no LABEL}"
fi

# --- the chart's container securityContext is what the container runs under -------------
# podman --user 65532:65532 --read-only --cap-drop=ALL --security-opt=no-new-privileges
# and podman's default seccomp profile (the chart's RuntimeDefault).
chart_sc="$(awk '/^securityContext:/ { on = 1; next } on && /^[^[:space:]#]/ { exit } on' helm/portone-facade/values.yaml)"
sc_want=("runAsNonRoot: true" "runAsUser: ${EXPECT_USER%%:*}" "runAsGroup: ${EXPECT_USER##*:}" "privileged: false"
  "allowPrivilegeEscalation: false" "readOnlyRootFilesystem: true" 'drop: ["ALL"]' "type: RuntimeDefault")
sc_missing=()
for want in "${sc_want[@]}"; do
  grep -qE "^[[:space:]]+$(sed 's/[][]/\\&/g' <<<"$want")[[:space:]]*(#.*)?$" <<<"$chart_sc" || sc_missing+=("$want")
done
if [ "${#sc_missing[@]}" = 0 ]; then
  pass "chart: values.yaml securityContext is what podman runs with (${sc_want[*]})"
else
  fail "chart: values.yaml securityContext lacks: ${sc_missing[*]} (this script's podman flags would no longer match it)"
fi

# --- run it under the chart's pod security settings, on loopback only --------------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
addr="127.0.0.1:$port"
timeout 60 "${PODMAN[@]}" run -d --pull=never --name "$ctr" --network host \
  --read-only --read-only-tmpfs=false --cap-drop=ALL --security-opt=no-new-privileges \
  --user "$EXPECT_USER" --env "LISTEN_ADDR=$addr" \
  "$image" --sandbox >/dev/null
echo "check-image: started container $ctr on $addr (--sandbox)"

running() { [ "$(timeout 30 "${PODMAN[@]}" inspect --format '{{.State.Running}}' "$ctr" 2>/dev/null)" = true ]; }
# Readiness: the healthcheck subcommand, run in the container by its bare
# name (on PATH, as the chart's helm test pod runs it). At most 60 tries and 60 s.
health_out=""
tries=0
deadline=$((SECONDS + 60))
while [ "$tries" -lt 60 ] && [ "$SECONDS" -lt "$deadline" ]; do
  tries=$((tries + 1))
  running || break
  health_out="$(timeout 10 "${PODMAN[@]}" exec "$ctr" portone-facade healthcheck --addr "$addr" --timeout 2s 2>&1)" && break
  sleep 0.5
done
if [ "$health_out" = SERVING ]; then
  pass "healthcheck: \`podman exec $ctr portone-facade healthcheck --addr $addr\` says SERVING (try $tries)"
else
  fail "healthcheck: after $tries tries: ${health_out:-no output}; running: $(running && echo yes || echo no)"
  echo "--- container log:"
  timeout 10 "${PODMAN[@]}" logs "$ctr" 2>&1 | tail -n 30 || true
  echo "---"
fi

# The Dockerfile's own HEALTHCHECK command, with this run's port.
mapfile -t hc_argv < <(python3 -c '
import json, sys
for a in json.loads(sys.argv[1]):
    print(a.replace(":" + sys.argv[2], ":" + sys.argv[3]))' "$df_healthcheck" "${EXPECT_PORT%/*}" "$port")
hc_out="$(timeout 10 "${PODMAN[@]}" exec "$ctr" "${hc_argv[@]}" 2>&1)" || true
check "healthcheck: the Dockerfile's HEALTHCHECK (${hc_argv[*]})" "$hc_out" SERVING

# A real grpcurl call against the sandboxed service.
grpc_out="$(timeout 20 grpcurl -plaintext -max-time 10 -d '{"merchant_uid":"image-check-1","amount":"1000"}' \
  "$addr" portone.facade.v1.PaymentPrepareService/PreparePayment 2>&1)" || true
grpc_got="$(python3 -c '
import json, sys
p = json.loads(sys.argv[1])["preparedPayment"]
print(p["merchantUid"], p["amount"])' "$grpc_out" 2>/dev/null || echo "no answer: $grpc_out")"
check "grpcurl: PreparePayment on --sandbox answers preparedPayment (merchantUid amount)" "$grpc_got" "image-check-1 1000"

# The binary in the image is the one built, and runs there (loader, libraries).
ver_in="$(timeout 10 "${PODMAN[@]}" exec "$ctr" "$df_path" --version 2>&1)" || true
check "binary: \`$df_path --version\` in the container" "$ver_in" "$("$bin" --version 2>&1)"
copied="$rootfs/copied"
mkdir -p "$copied"
if timeout 30 "${PODMAN[@]}" cp "$ctr:$df_path" "$copied/bin" >/dev/null 2>&1 \
   && timeout 30 "${PODMAN[@]}" cp "$ctr:$CA_BUNDLE" "$copied/ca.crt" >/dev/null 2>&1; then
  check "files: the image's binary and CA bundle (sha256) are the built binary and $CA_BUNDLE" \
    "$(sha256sum <"$copied/bin" | cut -c1-64) $(sha256sum <"$copied/ca.crt" | cut -c1-64)" \
    "$(sha256sum <"$bin" | cut -c1-64) $(sha256sum <"$CA_BUNDLE" | cut -c1-64)"
else
  fail "files: podman cp of $df_path or $CA_BUNDLE out of the container failed"
fi

# The running process, seen from the host.
pid="$(timeout 30 "${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$ctr" 2>/dev/null || echo 0)"
if [ "$pid" -gt 0 ] 2>/dev/null && [ -r "/proc/$pid/status" ]; then
  status="$(cat "/proc/$pid/status")"
  field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' <<<"$status"; }
  check "process: pid $pid ($(field Name)) Uid (real effective saved fs)" "$(field Uid)" "65532 65532 65532 65532"
  check "process: Gid (real effective saved fs)" "$(field Gid)" "65532 65532 65532 65532"
  check "process: no capabilities (CapInh CapPrm CapEff CapBnd CapAmb)" \
    "$(field CapInh) $(field CapPrm) $(field CapEff) $(field CapBnd) $(field CapAmb)" \
    "0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000"
  check "process: NoNewPrivs" "$(field NoNewPrivs)" 1
  check "process: seccomp filter mode (the default profile, as RuntimeDefault)" "$(field Seccomp)" 2
  root_opts="$(awk '$5 == "/" { split($6, o, ","); print o[1]; exit }' "/proc/$pid/mountinfo")"
  check "root fs: ReadonlyRootfs and the mount options of / in the container" \
    "$(timeout 30 "${PODMAN[@]}" inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$ctr") $root_opts" "true ro"
else
  fail "process: no running container process (pid '$pid')"
fi

# SIGTERM: the service drains and exits 0 within the stop timeout.
if timeout 30 "${PODMAN[@]}" stop -t 15 "$ctr" >/dev/null 2>&1; then
  check "shutdown: exit code after podman stop (SIGTERM)" "$(timeout 30 "${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$ctr")" 0
else
  fail "shutdown: podman stop did not finish within 30 s"
fi

echo "image: $passed passed, $failed failed"
[ "$failed" = 0 ]
