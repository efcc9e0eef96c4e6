#!/usr/bin/env bash
# The performance report: release builds, the verification micro-benchmark (criterion), then the
# load generator against SQLite (synchronous=normal), SQLite (synchronous=full) and PostgreSQL
# back to back; writes the generated section of BENCHMARKS.md.
#
#   scripts/bench.sh                      # the committed report's settings
#   scripts/bench.sh --duration 5         # any `latchkey-loadgen suite` option passes through
#
# PostgreSQL: LATCHKEY_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable:
# loopback, so no TLS, as on a same-host deployment)
# must let the load generator create (and drop) a database.
#
# The reference peer (Express + @simplewebauthn/server, in memory) is measured after Latchkey by
# the same load generator: LATCHKEY_BENCH_PEER (default ../shared/peers/simplewebauthn-node) is
# copied beside the results and `npm ci`-ed there (the folder itself may be read-only).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bench_dir="$target_dir/bench"
mkdir -p "$bench_dir"

echo "== release builds: the server and the load generator" >&2
cargo build --release -p server --bin latchkey -p loadgen --bin latchkey-loadgen

echo "== the verification step against the raw ES256 verify rate (criterion)" >&2
LATCHKEY_BENCH_DIR="$bench_dir" cargo bench -p latchkey-core --bench verification

peer_src=${LATCHKEY_BENCH_PEER:-../shared/peers/simplewebauthn-node}
peer_args=()
if [[ -f "$peer_src/server.js" ]]; then
  echo "== the reference peer: $peer_src" >&2
  rm -rf "$bench_dir/peer" && mkdir -p "$bench_dir/peer"
  cp "$peer_src/package.json" "$peer_src/package-lock.json" "$peer_src/server.js" "$bench_dir/peer/"
  (cd "$bench_dir/peer" && npm ci --no-audit --no-fund --loglevel=error)
  peer_args=(--peer "$bench_dir/peer")
else
  echo "== no reference peer at $peer_src: measuring Latchkey alone" >&2
fi

echo "== complete sign-ins, enrollments and token issuance over HTTP" >&2
"$target_dir/release/latchkey-loadgen" suite \
  --server-bin "$target_dir/release/latchkey" \
  --results "$bench_dir" \
  --verification "$bench_dir/verification.json" \
  --write BENCHMARKS.md "${peer_args[@]}" "$@"
