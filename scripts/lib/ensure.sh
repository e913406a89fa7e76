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

# ensure_build: compiles src/ into dist/ unless dist/ is newer than every input. The stamp is made
# before compiling, so a source saved while tsc runs is newer than it and is compiled next time.
build_stamp=dist/.build-stamp
ensure_build() {
  if [ -f "$build_stamp" ] && [ -f dist/main.js ] && [ -z "$(find src tsconfig.json tsconfig.build.json \
      package-lock.json -newer "$build_stamp" -print -quit)" ]; then
    return 0
  fi
  echo "pushguard: building (tsc)" >&2
  mkdir -p dist
  touch "$build_stamp.next"
  npx tsc -p tsconfig.build.json
  mv "$build_stamp.next" "$build_stamp"
}
