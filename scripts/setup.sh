#!/usr/bin/env bash
# Installs what building (and, with `test`, testing) Latchkey needs, skipping what is present.
# Safe to run any number of times. Needs: rustup/cargo, Node.js with npm, apt (Debian/Ubuntu).
#
#   scripts/setup.sh run    # wasm target, cargo-leptos, wasm-bindgen CLI, wasm-opt, browser SDK
#
# wasm-opt comes from npm's `binaryen` package (tools/, run under Node): Debian's binaryen (108)
# is older than what wasm-bindgen emits and breaks the release wasm. Put tools/node_modules/.bin
# first on PATH before `cargo leptos build --release` (scripts/run.sh and scripts/test.sh do).
#   scripts/setup.sh test   # the above, plus Chromium, psql, curl, the end-to-end npm packages
#                           # and the API fuzzer (schemathesis from PyPI, in tools/.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-run}"

CARGO_LEPTOS_VERSION=0.3.10 # newer releases need a newer rustc than this project's
# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# cargo-leptos downloads wasm-opt, wasm-bindgen and sass when they are not on PATH; such downloads
# may be impossible (closed networks), so everything it needs is installed from package registries.
apt_packages=()
if [ "$purpose" = test ]; then
  [ -x /usr/bin/chromium ] || apt_packages+=(chromium)
  command -v psql >/dev/null || apt_packages+=(postgresql-client)
  command -v curl >/dev/null || apt_packages+=(curl)
  # The deployment files' checks (server/tests/deploy_files.rs): `nginx -t`, `systemd-analyze`.
  [ -x /usr/sbin/nginx ] || apt_packages+=(nginx)
  command -v systemd-analyze >/dev/null || apt_packages+=(systemd)
  # The API fuzzer's virtual environment needs python3 (3.11, as tools/requirements.txt was
  # resolved for) with venv and ensurepip (Debian's python3-venv).
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3 python3-venv)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing ${apt_packages[*]} (apt)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${apt_packages[@]}"
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -qx "cargo-leptos $CARGO_LEPTOS_VERSION"; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes a while, once)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: the CLI's own lock file pins dependencies that no longer build on this rustc.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if ! cmp -s tools/package-lock.json tools/node_modules/.package-lock.json 2>/dev/null; then
  say "installing build tools from npm (binaryen's wasm-opt)"
  (cd tools && npm ci --no-audit --no-fund)
fi

# The browser SDK (GET /sdk/latchkey.js): bundled from npm packages into public/sdk/, which the
# portal build copies into the served site. Rebuilt whenever its sources are newer.
if ! cmp -s sdk/package-lock.json sdk/node_modules/.package-lock.json 2>/dev/null; then
  say "installing the browser SDK's packages (npm ci)"
  (cd sdk && npm ci --no-audit --no-fund)
fi
if [ ! -f public/sdk/latchkey.js ] || [ -n "$(find sdk/src sdk/build.mjs sdk/package-lock.json -newer public/sdk/latchkey.js)" ]; then
  say "building the browser SDK"
  (cd sdk && npm run --silent build)
fi

if [ "$purpose" = test ]; then
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
  if ! cmp -s end2end/package-lock.json end2end/node_modules/.package-lock.json 2>/dev/null; then
    say "installing end-to-end test packages (npm ci)"
    (cd end2end && npm ci --no-audit --no-fund)
  fi
  # The API fuzzer (scripts/api-fuzz.sh): schemathesis from PyPI in a virtual environment of its
  # own, every package pinned with its hashes (tools/requirements.txt, made from requirements.in).
  if ! cmp -s tools/requirements.txt tools/.venv/requirements.txt 2>/dev/null; then
    say "installing the API fuzzer (schemathesis, pinned with hashes) into tools/.venv"
    rm -rf tools/.venv
    python3 -m venv tools/.venv
    tools/.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
      -r tools/requirements.txt
    cp tools/requirements.txt tools/.venv/requirements.txt
  fi
fi
