#!/usr/bin/env bash
# The system tools the tests need, found where the platform has them, else installed from its packages:
#   tools/system_deps.sh browser|prometheus|wrk|shellcheck|haproxy|all
# - GitHub's Ubuntu runners ship Google Chrome and a matching chromedriver ($CHROMEWEBDRIVER); Ubuntu's own chromium
#   package is only a stub for the snap, so it is never installed there. Debian has chromium and chromium-driver.
# - prometheus (with promtool), wrk and shellcheck are packages of both Debian and Ubuntu.
# Installing needs root or password-less sudo; without either it says what to run and leaves the tests to skip.
# OS_RELEASE=<file> stands in for /etc/os-release (the tests check the Ubuntu route on Debian).
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
os_id() { sed -n 's/^ID=//p' "${OS_RELEASE:-/etc/os-release}" 2>/dev/null | tr -d '"' | grep . || echo unknown; }

apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if have sudo && sudo -n true 2>/dev/null; then sudo=(sudo -n); else echo "not root: run  sudo apt-get install -y $*" >&2; return 0; fi
  fi
  if ! have apt-get; then echo "no apt-get on this platform ($(os_id)): install $* with its package manager" >&2; return 1; fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# the first Chrome or Chromium on PATH (Chrome first: on Ubuntu, chromium may be the snap stub), and its driver
browser_bin() { for b in google-chrome google-chrome-stable chromium; do if have "$b"; then command -v "$b"; return; fi; done; }
driver_bin() {
  if [ -x "${CHROMEWEBDRIVER:-/nonexistent}/chromedriver" ]; then echo "$CHROMEWEBDRIVER/chromedriver"; return; fi
  if have chromedriver; then command -v chromedriver; fi
}

need_browser() {
  if [ -z "$(browser_bin)" ] || [ -z "$(driver_bin)" ]; then
    case "$(os_id)" in
      ubuntu) echo "no Google Chrome + chromedriver found: install them (GitHub's runners have both; Ubuntu's chromium is a snap)" >&2; return 1 ;;
      *) apt_install chromium chromium-driver ;;
    esac
  fi
  echo "browser: $(browser_bin) with $(driver_bin)"
}

# a package's commands, installed with the package where one is missing; where each lives
need_package() {
  local pkg=$1 cmd; shift
  for cmd in "$@"; do if ! have "$cmd"; then apt_install "$pkg"; break; fi; done
  local paths=(); for cmd in "$@"; do paths+=("$(command -v "$cmd" || echo "(no $cmd)")"); done
  echo "$pkg: $(printf '%s and ' "${paths[@]}" | sed 's/ and $//')"
}
need_prometheus() { need_package prometheus prometheus promtool; }
need_wrk() { need_package wrk wrk; }
need_haproxy() { need_package haproxy haproxy; }
need_shellcheck() { need_package shellcheck shellcheck; }

case "${1:-all}" in
  browser|prometheus|wrk|shellcheck|haproxy) "need_$1" ;;
  all) need_browser; need_prometheus; need_wrk; need_shellcheck; need_haproxy ;;
  *) echo "usage: $0 browser|prometheus|wrk|shellcheck|haproxy|all" >&2; exit 2 ;;
esac
