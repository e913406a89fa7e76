# Shared by demo.sh, test.sh and bench.sh: install what is missing, nothing more.
# Usage: source scripts/lib/ensure.sh; ensure_packages pkg:/path/to/binary ...; ensure_node_modules; ensure_build

apt_updated=""

# ensure_packages DEBIAN_PACKAGE:PATH_THAT_PROVES_IT_IS_INSTALLED ...
ensure_packages() {
  local missing=()
  for spec in "$@"; do
    local package=${spec%%:*} path=${spec#*:}
    [ -e "$path" ] || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "pushguard: installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  # Debian's postinst may try to start the service; the policy-rc.d guard keeps it from taking
  # the ports the demo and tests use.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "pushguard: installing npm dependencies (npm ci)" >&2
    npm ci --no-audit --no-fund >&2
  fi
}

ensure_build() {
  npx tsc -p tsconfig.build.json
}
