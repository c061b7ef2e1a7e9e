#!/usr/bin/env bash
# Installs what `rtctl lab` needs on a Debian/Ubuntu machine, only if it is missing.
# Usage (as root): scripts/lab-prereqs.sh
set -euo pipefail

# Debian package -> a command it provides (checked with dpkg first, then on PATH).
declare -A PROVIDES=(
  [systemd-container]=systemd-nspawn
  [debootstrap]=debootstrap
  [tinyproxy]=tinyproxy
  [iproute2]=ip
  [openssh-client]=ssh
)

if [[ $(id -u) -ne 0 ]]; then
  echo "lab-prereqs: run as root (e.g. sudo $0)" >&2
  exit 1
fi

missing=()
for pkg in "${!PROVIDES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
     && ! PATH="$PATH:/usr/sbin:/sbin" command -v "${PROVIDES[$pkg]}" >/dev/null; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "lab-prereqs: all present (${!PROVIDES[*]})"
  exit 0
fi

echo "lab-prereqs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

# The tinyproxy package starts a machine-wide tinyproxy on port 8888; rtctl runs its own per lab and does
# not need it, but leaves it alone (stopping it is the machine owner's call).
echo "lab-prereqs: done"
