# Sourced by scripts/test. `test_setup all|rust` makes sure this machine has what the tests need,
# and installs what it can, so a bare Debian machine needs no step before `scripts/test` (CI runs
# the same set-up through `scripts/test --setup`):
#
#   gcc, libc6-dev               building the crates with C in them (ring, SQLite)
#   postgresql                   the server the PostgreSQL half of the suite runs on (not needed
#                                with DOORBUSTER_TEST_POSTGRES_URL: a server of yours)
#   openssl                      the certificates of the test servers (TLS tests)
#   postgresql-client, curl      psql and curl, which the README's examples use (tests/it/readme.rs)
#   python3-venv                 scripts/schemathesis's virtualenv                       (all only)
#   chromium, nodejs 20+, npm    the browser tests, scripts/e2e, and their npm packages  (all only)
#
# (cargo-nextest is not installed: scripts/test runs the Rust tests under `cargo test` without it.)
#
# As root on a machine with apt-get, missing Debian packages are installed. Otherwise it prints the
# one command that installs them and stops: nothing is skipped for want of a tool.
#
#   DOORBUSTER_SETUP_DRY_RUN=1       say what would be installed (apt-get --simulate); change nothing
#   DOORBUSTER_SETUP_ASSUME_MISSING="chromium postgresql ..."   treat these Debian packages as
#                                    missing, to try the install path on a machine that has them

setup_say() { echo "scripts/test: $*" >&2; }

# Whether DOORBUSTER_SETUP_ASSUME_MISSING names $1.
setup_assume_missing() {
  [[ " ${DOORBUSTER_SETUP_ASSUME_MISSING:-} " == *" $1 "* ]]
}

# The Debian packages missing for scope $1 (all | rust), one per line.
setup_missing_packages() {
  local scope=$1
  if setup_assume_missing gcc || ! command -v cc >/dev/null 2>&1; then echo gcc; echo libc6-dev; fi
  if [[ -z ${DOORBUSTER_TEST_POSTGRES_URL:-} ]]; then
    if setup_assume_missing postgresql \
      || ! { command -v pg_ctl >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; }; then
      echo postgresql
    fi
  fi
  if setup_assume_missing openssl || ! command -v openssl >/dev/null 2>&1; then echo openssl; fi
  if setup_assume_missing postgresql-client || ! command -v psql >/dev/null 2>&1; then
    echo postgresql-client
  fi
  if setup_assume_missing curl || ! command -v curl >/dev/null 2>&1; then echo curl; fi
  [[ $scope == all ]] || return 0

  # Debian ships venv apart from python3; the only sure test is making one.
  local probe
  probe=$(mktemp -d)
  if setup_assume_missing python3-venv || ! python3 -m venv "$probe/venv" >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || echo python3
    echo python3-venv
  fi
  rm -rf "$probe"
  # The browser tests drive Debian's Chromium (a test tool's own browser download cannot work
  # everywhere this runs).
  if setup_assume_missing chromium || [[ ! -x ${CHROME_PATH:-/usr/bin/chromium} ]]; then
    echo chromium
  fi
  if setup_assume_missing nodejs || ! setup_node_ok; then
    echo nodejs
    # Debian packages npm apart; NodeSource's nodejs carries its own.
    if ! command -v npm >/dev/null 2>&1 && ! apt-cache policy nodejs 2>/dev/null | grep -q nodesource; then
      echo npm
    fi
  fi
}

# Whether node 20 or newer and npm are on PATH.
setup_node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    && (( $(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0) >= 20 ))
}

# Installs e2e/'s pinned npm packages when e2e/node_modules is missing or older than the lock.
setup_e2e_npm() {
  if [[ ! -f e2e/node_modules/.package-lock.json || e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]]; then
    if [[ -n ${DOORBUSTER_SETUP_DRY_RUN:-} ]]; then
      setup_say "would run: (cd e2e && npm ci)"
      return
    fi
    setup_say "npm ci (e2e/: playwright-core, lighthouse)"
    # npm keeps its download cache in ~/.npm, so later runs on this machine install offline.
    (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

test_setup() {
  local scope=${1:-all}
  local missing=()
  mapfile -t missing < <(setup_missing_packages "$scope")
  if (( ${#missing[@]} > 0 )); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      if [[ -n ${DOORBUSTER_SETUP_DRY_RUN:-} ]]; then
        setup_say "would install ${missing[*]}: apt-get --simulate says:"
        apt-get install --simulate -y "${missing[@]}" | grep -E '^(Inst|Conf) ' | head -n 40 >&2 || true
      else
        setup_say "installing ${missing[*]} (apt-get)"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
      fi
    else
      local how="sudo apt-get install -y ${missing[*]}"
      command -v apt-get >/dev/null 2>&1 \
        || how="(Debian package names; install their equivalents with this system's package manager) ${missing[*]}"
      setup_say "missing: ${missing[*]}. Install them with:"
      echo >&2
      echo "  $how" >&2
      echo >&2
      setup_say "then run it again (as root, scripts/test installs them itself)"
      return 1
    fi
  fi

  if [[ $scope == all && -z ${DOORBUSTER_SETUP_DRY_RUN:-} ]] && ! setup_node_ok; then
    local candidate
    candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ { print $2 }')
    setup_say "the browser tests (scripts/e2e) need Node.js 20 or newer with npm; this machine has" \
      "$(node --version 2>/dev/null || echo none), and apt offers nodejs ${candidate:-none}." \
      "Install Node.js 20+ (Debian 13 ships it), then run scripts/test again"
    return 1
  fi
  [[ $scope != all ]] || setup_e2e_npm
}
