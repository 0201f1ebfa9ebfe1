#!/usr/bin/env bash
# Debian packages the test suite drives: chromium (dashboard end-to-end tests with Playwright), nginx (the
# load balancer of the multi-replica test) and systemd's `systemd-analyze` (checks deploy/systemd/bastion.service).
# Installed only when missing; needs root (as on CI) or sudo.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v systemd-analyze >/dev/null || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
# The package may start nginx on port 80; the tests run their own instances, so stop a service we just started.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v nginx >/dev/null; then
  $SUDO nginx -s quit 2>/dev/null || true
fi
