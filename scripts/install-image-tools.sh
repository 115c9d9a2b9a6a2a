#!/usr/bin/env bash
# Installs the tools that scripts/check-image.sh needs to assemble and run the
# container image without pulling a base image: podman, buildah and runc, from
# Debian 12's own apt repository, pinned to the versions it serves (look-ups:
# `apt-cache policy podman buildah runc`). Idempotent: packages already
# installed at the pinned versions are kept and nothing is fetched.
#
# It also writes the container configuration the checks use, outside the
# clone, under ${PORTONE_FACADE_CACHE:-~/.cache/portone-facade}/image/:
#   containers.conf  `[containers] default_ulimits = []` (runc otherwise fails
#                    to apply the default RLIMIT_NOFILE on our machines);
#   storage.conf     image and container storage under image/storage, so
#                    nothing is left in /var/lib/containers.
# scripts/check-image.sh points CONTAINERS_CONF and CONTAINERS_STORAGE_CONF
# at them.
set -euo pipefail

# --- pins (Debian 12 bookworm, amd64) ------------------------------------------
PINS=(
  "podman=4.3.1+ds1-8+deb12u1+b3"
  "buildah=1.28.2+ds1-3+deb12u1+b3"
  "runc=1.1.5+ds1-1+deb12u1"
)
# --------------------------------------------------------------------------------

die() { echo "install-image-tools: $*" >&2; exit 1; }

cache="${PORTONE_FACADE_CACHE:-$HOME/.cache/portone-facade}"
conf_dir="$cache/image"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
case "$(realpath -m "$conf_dir")/" in
  "$repo_root/"*) die "config dir $conf_dir is inside the repository; choose another PORTONE_FACADE_CACHE" ;;
esac

[ "$(uname -s)" = Linux ] || die "only Linux is supported"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null \
  || die "apt-get and dpkg-query are needed (Debian 12)"

installed_version() { # PKG -> the installed version, or nothing
  dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null \
    | awk '$1 == "installed" { print $2 }'
}

all_pinned() {
  local pin
  for pin in "${PINS[@]}"; do
    [ "$(installed_version "${pin%%=*}")" = "${pin#*=}" ] || return 1
  done
}

if all_pinned; then
  echo "image tools up to date ($(printf '%s ' "${PINS[@]}" | sed 's/ $//'))"
else
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install ${PINS[*]}"
    as_root=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive

  available() { # every pinned version known to apt?
    local pin
    for pin in "${PINS[@]}"; do
      apt-cache show "$pin" >/dev/null 2>&1 || return 1
    done
  }
  if ! available; then
    echo "install-image-tools: pinned versions not in the apt lists; apt-get update"
    "${as_root[@]}" apt-get update -q || die "apt-get update failed"
    if ! available; then
      for pin in "${PINS[@]}"; do
        echo "  ${pin%%=*}: pinned ${pin#*=}; apt offers:" >&2
        apt-cache policy "${pin%%=*}" >&2 || true
      done
      die "the pinned versions are not served by this machine's apt repositories; update PINS"
    fi
  fi

  echo "install-image-tools: apt-get install ${PINS[*]}"
  # No recommends: slirp4netns, fuse-overlayfs, uidmap helpers etc. are not
  # used (host network, root, native overlay or vfs storage).
  "${as_root[@]}" apt-get install -y -q --no-install-recommends "${PINS[@]}" \
    || die "apt-get install ${PINS[*]} failed"

  for pin in "${PINS[@]}"; do
    got="$(installed_version "${pin%%=*}")"
    [ "$got" = "${pin#*=}" ] || die "${pin%%=*} is ${got:-not installed}, pinned ${pin#*=}"
  done
  echo "image tools installed ($(printf '%s ' "${PINS[@]}" | sed 's/ $//'))"
fi

# The binaries answer, at the packaged versions (upstream version = the
# Debian version up to `+ds`).
for pin in "${PINS[@]}"; do
  pkg="${pin%%=*}"
  upstream="${pin#*=}"
  upstream="${upstream%%+*}"
  out="$("$pkg" --version 2>&1)" || die "$pkg --version failed: $out"
  grep -q "version $upstream\b" <<<"$out" || die "$pkg --version says '$out', expected $upstream"
done

# Configuration, written every time (cheap) so that it always matches this script.
mkdir -p "$conf_dir/storage/root" "$conf_dir/storage/run"
cat >"$conf_dir/containers.conf.tmp" <<'EOF'
# Written by scripts/install-image-tools.sh; read through CONTAINERS_CONF.
[containers]
default_ulimits = []
EOF
mv "$conf_dir/containers.conf.tmp" "$conf_dir/containers.conf"
cat >"$conf_dir/storage.conf.tmp" <<EOF
# Written by scripts/install-image-tools.sh; read through CONTAINERS_STORAGE_CONF.
[storage]
driver = "overlay"
graphroot = "$conf_dir/storage/root"
runroot = "$conf_dir/storage/run"
EOF
mv "$conf_dir/storage.conf.tmp" "$conf_dir/storage.conf"
echo "image tool config in $conf_dir (containers.conf, storage.conf)"
