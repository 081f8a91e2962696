#!/usr/bin/env bash
# Entry point of every npm script: installs what the machine lacks (npm packages, Debian packages when root,
# Deno's module cache), then hands over to the Deno script for the command.
set -euo pipefail
cd "$(dirname "$0")/.."
export DENO_TLS_CA_STORE=system
export DENO_NO_UPDATE_CHECK=1
export PATH="$PWD/node_modules/.bin:/usr/lib/postgresql/15/bin:$PATH"

say() { printf '[canais] %s\n' "$*" >&2; }

# 1. npm packages (deno, supabase CLI), pinned by package-lock.json.
if [ ! -x node_modules/.bin/deno ] || [ ! -x node_modules/.bin/supabase ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# 2. Debian packages: Postgres 15 server, pg_cron, pgTAP + pg_prove, plpgsql_check, Prometheus (the metrics tests
#    scrape the stack with the real server and check with promtool; the build packages of pg_net and Vault come in
#    step 3, only when they must be built).
need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15 postgresql-client-15)
[ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || need_apt+=(postgresql-15-cron)
[ -f /usr/share/postgresql/15/extension/pgtap.control ] || need_apt+=(postgresql-15-pgtap)
command -v pg_prove >/dev/null 2>&1 || need_apt+=(libtap-parser-sourcehandler-pgtap-perl)
[ -f /usr/lib/postgresql/15/lib/plpgsql_check.so ] || need_apt+=(postgresql-15-plpgsql-check)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  else
    say "missing Debian packages: ${need_apt[*]}"
    say "run as root, or: sudo apt-get install -y --no-install-recommends ${need_apt[*]}"
    exit 1
  fi
fi

# 3. pg_net and supabase_vault, built from their pinned sources (CANAIS_MIRROR_DIR, or the pinned GitHub URLs), and
#    Supabase's role set-up SQL; nothing to do when they are in place already.
case "${1:-}" in
  stack|test|bench) deno run -A --quiet dev/extensions.ts ensure ;;
esac

cmd="${1:-}"; shift || true
case "$cmd" in
  stack) exec deno run -A --quiet dev/stack.ts "$@" ;;
  test) exec deno run -A --quiet dev/test.ts "$@" ;;
  bench) exec deno run -A --quiet bench/main.ts "$@" ;;
  ops) exec deno run -A --quiet dev/ops.ts "$@" ;;
  *) say "usage: dev/run.sh stack|test|bench|ops …"; exit 2 ;;
esac
