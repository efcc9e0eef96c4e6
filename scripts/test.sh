#!/usr/bin/env bash
# Sets up, then runs every check and test: formatting, clippy (server and browser feature sets),
# the Rust tests on SQLite and PostgreSQL, the release build, the browser suite against it on
# both databases (with a smoke test of scripts/run.sh), and API fuzzing of it (schemathesis).
#
# PostgreSQL: LATCHKEY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) must
# let the tests create databases. Without it the PostgreSQL tests skip loudly; with CI set, they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

step "cargo fmt --check"
cargo fmt --all -- --check

# Server and browser halves are linted apart: enabling both feature sets in one build would
# unify `ssr` and `hydrate`, which Leptos does not allow.
step "clippy (ssr: server, app, core, migrations)"
cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
step "clippy (hydrate: frontend, app on wasm32)"
cargo clippy -p frontend -p app --features app/hydrate --target wasm32-unknown-unknown -- -D warnings

step "the previous release's binary, for the rolling-upgrade test"
LATCHKEY_TEST_PREVIOUS_BIN=$(scripts/previous-release.sh)
export LATCHKEY_TEST_PREVIOUS_BIN

step "Rust tests (SQLite and PostgreSQL)"
cargo test --workspace --exclude frontend

# The browser suite runs against exactly what scripts/run.sh serves: the release binary and the
# release site (wasm through wasm-opt, as run.sh builds it). Its first test starts run.sh itself.
step "release build (server + wasm), as scripts/run.sh builds it"
export PATH="$PWD/tools/node_modules/.bin:$PATH"
cargo leptos build --release

step "browser suite against the release build (Chromium; SQLite and PostgreSQL; scripts/run.sh)"
export LATCHKEY_BIN="$target_dir/release/latchkey"
export LATCHKEY_SITE_ROOT="$PWD/target/site"
(cd end2end && npm test)

# Every operation of GET /api/openapi.json fuzzed against the release binary (schemathesis, with
# and without credentials, SQLite and PostgreSQL): no 5xx, no panic, every answer as documented.
step "API fuzzing against the release build (schemathesis; SQLite and PostgreSQL)"
scripts/api-fuzz.sh
