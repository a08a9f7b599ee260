# Sourced by gradscope's scripts: install_missing_packages PKG... installs the Debian packages
# not yet installed (as root, or through sudo). Expects the caller to define say() and die().
install_missing_packages() {
  local missing=() pkg
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "dpkg-query not found: not a Debian system, assuming dependencies are installed"
    return 0
  fi
  for pkg in "$@"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != installed ]]; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "Debian packages: all present ($*)"
    return 0
  fi
  say "Installing missing Debian packages: ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo not found; install as root: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

