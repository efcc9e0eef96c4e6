#!/usr/bin/env bash
# Schema-driven fuzzing of the Server and Client APIs: schemathesis (tools/requirements.txt,
# installed by `scripts/setup.sh test`) reads GET /api/openapi.json of a running server and sends
# every operation generated valid and invalid input, checking that no answer is a 5xx and that
# every answer conforms to the document (status code documented, content type, headers, body
# schema), and that the server never panics.
#
# On SQLite (a temporary file) and on PostgreSQL (a fresh database, dropped afterwards), each with
# a tenant that has passkeys on (made with the CLI), every operation is fuzzed three times, each
# against a fresh server process:
#   credentials            the tenant's Server API key and an enrollment token of one of its
#                          users for the two security schemes; path parameters generated;
#   credentials-known-ids  the same, with the real tenant and user in the paths, so requests get
#                          past the lookups (GET /api/v1/users/fuzz-user… answers 200s to check);
#   no-credentials         nothing: every operation without a key or token.
# The Client API's request limits are off (every request comes from 127.0.0.1; the limits have
# tests of their own); the Server API's failed-authentication throttle cannot be turned off.
#
#   LATCHKEY_BIN=…/latchkey [LATCHKEY_SITE_ROOT=…] scripts/api-fuzz.sh [sqlite|postgres]…
#
# LATCHKEY_FUZZ_MAX_EXAMPLES (default 50) bounds the examples per operation and phase, and
# LATCHKEY_FUZZ_TIMEOUT (default 80 s) each schemathesis run (a run past it fails): a database
# takes about a minute on two cores (release build), never more than three runs' timeouts.
# LATCHKEY_FUZZ_SEED repeats a run (each run prints its seed). LATCHKEY_FUZZ_CHECKS replaces the
# list of checks (`all` for every check schemathesis has, some of which judge API design rather
# than conformance). After a failure the reports (JUnit XML, server logs, `st replay` cache) stay
# in the directory printed at the end.
# PostgreSQL: LATCHKEY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres);
# without a server there the PostgreSQL half is skipped loudly, and with CI set it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${LATCHKEY_BIN:?set LATCHKEY_BIN to the latchkey binary to fuzz}"
schemathesis="$PWD/tools/.venv/bin/schemathesis"
python="$PWD/tools/.venv/bin/python"
if [ ! -x "$schemathesis" ]; then
  echo "api-fuzz: schemathesis is not installed: run scripts/setup.sh test" >&2
  exit 1
fi
max_examples="${LATCHKEY_FUZZ_MAX_EXAMPLES:-50}"
run_timeout="${LATCHKEY_FUZZ_TIMEOUT:-80}"
pg_admin="${LATCHKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
checks="${LATCHKEY_FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}"
databases=("$@")
[ ${#databases[@]} -gt 0 ] || databases=(sqlite postgres)

work=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-api-fuzz.XXXXXX")
server_pid=""
pg_db=""
say() { printf '\033[1mapi-fuzz:\033[0m %s\n' "$*" >&2; }

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
drop_pg_db() {
  if [ -n "$pg_db" ]; then
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1 || true
    pg_db=""
  fi
}
cleanup() {
  stop_server
  drop_pg_db
}
trap cleanup EXIT

# The binary with only our LATCHKEY_* variables (nothing from the caller's shell leaks in but
# LATCHKEY_SITE_ROOT).
# Only ever run in a subshell (`… &`, `$(…)`), so it may `exec`: the background server's PID is
# then the binary's own, and stop_server's SIGTERM reaches it (not an `env` parent that would
# die and leave the server running).
latchkey() {
  exec env $(env | sed -n 's/^\(LATCHKEY_[A-Z_]*\)=.*/-u \1/p' | grep -v -e LATCHKEY_SITE_ROOT) \
    LATCHKEY_DATABASE_URL="$db_url" \
    LATCHKEY_CLIENT_RATE_LIMIT=0 LATCHKEY_SOURCE_RATE_LIMIT=0 LATCHKEY_OPEN_CEREMONIES_PER_ADDRESS=0 \
    RUST_LOG=warn,latchkey_server=info \
    "$LATCHKEY_BIN" "$@"
}
json_field() { "$python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Starts `latchkey serve` on a free port, logging to $1; sets base_url.
start_server() {
  local log="$1"
  latchkey serve --bind 127.0.0.1:0 2>"$log" &
  server_pid=$!
  local addr=""
  for _ in $(seq 300); do
    addr=$(sed -n 's/.*latchkey is listening.* addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    say "the server did not start:"
    cat "$log" >&2
    return 1
  fi
  base_url="http://$addr"
}

# What the server answered in a run, from its request log: requests per documented operation and
# status ("(other)": schemathesis's probes of paths the document does not have).
summarize() {
  "$python" - "$1" "$work/openapi.json" <<'PY'
import collections, json, re, sys
log, doc = sys.argv[1], json.load(open(sys.argv[2]))
ops = [(m.upper(), p, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"))
       for p, item in doc["paths"].items() for m in item]
seen = collections.defaultdict(collections.Counter)
for line in open(log, errors="replace"):
    m = re.search(r"method=(\w+) path=(\S*?)\}.* status=(\d+)", line)
    if not m:
        continue
    method, path, status = m.groups()
    name = next((f"{om} {op}" for om, op, rx in ops if om == method and rx.match(path)), "(other)")
    seen[name][status] += 1
for name in sorted(seen):
    counts = seen[name]
    detail = " ".join(f"{s}x{n}" for s, n in sorted(counts.items()))
    print(f"  {sum(counts.values()):5d}  {name}: {detail}", file=sys.stderr)
PY
}

# One schemathesis run against a fresh server process (the failed-authentication throttle lives
# in its memory, so each run starts unthrottled); its exit status is the run's verdict.
fuzz() {
  local name="$1" config="$2"
  say "$name"
  start_server "$work/$name.server.log"
  local seed=() status=0
  [ -z "${LATCHKEY_FUZZ_SEED:-}" ] || seed=(--seed "$LATCHKEY_FUZZ_SEED")
  # Run from the work directory: schemathesis and Hypothesis keep their caches in the current one.
  # One worker: with threads, Hypothesis's ast.parse trips CPython 3.11.7's "AST constructor
  # recursion depth mismatch" (a SystemError the run reports as an error of its own).
  (cd "$work" && timeout --kill-after=10 "$run_timeout" \
    "$schemathesis" --config-file "$config" run "$base_url/api/openapi.json" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --continue-on-failure \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    --report junit --report-junit-path "$work/$name.junit.xml" \
    "${seed[@]}") || status=$?
  stop_server
  if grep -q panicked "$work/$name.server.log"; then
    say "the server panicked:"
    grep -A3 panicked "$work/$name.server.log" >&2
    status=1
  fi
  say "$name: requests the server answered, per operation and status:"
  summarize "$work/$name.server.log"
  return "$status"
}

failed=()
for database in "${databases[@]}"; do
  case "$database" in
    sqlite)
      db_url="sqlite://$work/fuzz.db?mode=rwc"
      ;;
    postgres)
      if ! psql -q "$pg_admin" -c 'SELECT 1' >/dev/null 2>&1; then
        if [ -n "${CI:-}" ]; then
          say "PostgreSQL is required when CI is set, but $pg_admin does not answer"
          exit 1
        fi
        say "*** SKIPPED: PostgreSQL — no server at $pg_admin (CI=1 makes this fatal) ***"
        continue
      fi
      pg_db="latchkey_fuzz_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
      psql -q "$pg_admin" -c "CREATE DATABASE \"$pg_db\"" >/dev/null
      db_url=$("$python" -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg_admin" "$pg_db")
      ;;
    *)
      echo "api-fuzz: unknown database $database (sqlite or postgres)" >&2
      exit 2
      ;;
  esac
  started=$SECONDS

  # A tenant with passkeys on, its API key, and a user with an enrollment token valid for the
  # whole run, made as an operator and a backend would.
  tenant_id=$(latchkey tenant create --name "Fuzz" --rp-id localhost \
    --origin http://localhost:3000 --enable-passkeys | json_field tenant_id)
  api_key=$(latchkey api-key create --tenant "$tenant_id" --name fuzz | json_field api_key)
  start_server "$work/$database-setup.server.log"
  curl -fsS "$base_url/api/openapi.json" >"$work/openapi.json"
  enrollment_token=$(curl -fsS -X POST "$base_url/api/v1/users/fuzz-user/enrollment-tokens" \
    -H "authorization: Bearer $api_key" -H 'content-type: application/json' \
    -d '{"username": "fuzz@example.com", "ttl_seconds": 3600}' | json_field token)
  stop_server

  printf '%s\n' \
    '[auth.openapi.api_key]' "bearer = \"$api_key\"" '' \
    '[auth.openapi.enrollment_token]' "bearer = \"$enrollment_token\"" \
    >"$work/credentials.toml"
  cp "$work/credentials.toml" "$work/credentials-known-ids.toml"
  printf '%s\n' '' '[parameters]' "\"path.tenant_id\" = \"$tenant_id\"" \
    '"path.user_id" = "fuzz-user"' >>"$work/credentials-known-ids.toml"
  : >"$work/no-credentials.toml"

  for run in credentials credentials-known-ids no-credentials; do
    fuzz "$database-$run" "$work/$run.toml" || failed+=("$database-$run")
  done
  drop_pg_db
  rm -f "$work"/fuzz.db*
  say "$database: $((SECONDS - started)) s"
done

if [ ${#failed[@]} -gt 0 ]; then
  say "reports and server logs: $work"
  say "FAILED: ${failed[*]}"
  exit 1
fi
rm -rf "$work"
say "no failures"
