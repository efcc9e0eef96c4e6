#!/usr/bin/env bash
# Sets up, builds the release binary and the portal assets, and serves Latchkey with the
# embedded SQLite default on http://localhost:3000 (override with LATCHKEY_* variables).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
# wasm-opt from npm's binaryen (see scripts/setup.sh), ahead of any older one on the machine.
export PATH="$PWD/tools/node_modules/.bin:$PATH"
cargo leptos build --release
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
export LATCHKEY_SITE_ROOT="${LATCHKEY_SITE_ROOT:-$PWD/target/site}"
exec "$target_dir/release/latchkey" serve "$@"
