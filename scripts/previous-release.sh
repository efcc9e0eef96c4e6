#!/usr/bin/env bash
# Builds the `latchkey` binary of the previous release — the commit before the one that added the
# newest migration — for the rolling-upgrade test (server/tests/upgrade.rs), and prints its path.
# (Not the commit that recorded it in landed.sha256: that is recorded when it lands, after the
# migration may have been committed with the work it belongs to.)
#
# Its own target directory, kept between runs: sharing this tree's would be unsafe (cargo can
# judge another tree's package of the same name fresh from this one's build records and leave
# the wrong binary in place) and would relink this tree's binary back and forth.
set -euo pipefail
cd "$(dirname "$0")/.."
newest=$(git log -1 --diff-filter=A --format=%H -- 'migrations/src/m2*.rs' 2>/dev/null || true)
if [ -z "$newest" ] || ! previous=$(git rev-parse --verify --quiet "$newest^"); then
  # A shallow clone has no history to build from: the test says it was skipped.
  echo "previous-release: no history before the newest migration (shallow clone?)" >&2
  exit 0
fi
out="${LATCHKEY_PREVIOUS_DIR:-$HOME/.cache/latchkey/previous}"
mkdir -p "$out"
bin="$out/latchkey-$previous"
if [ ! -x "$bin" ]; then
  work=$(mktemp -d)
  trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  git worktree add --detach --quiet "$work/src" "$previous"
  CARGO_TARGET_DIR="$HOME/.cache/latchkey/target-previous" \
    cargo build --quiet --manifest-path "$work/src/Cargo.toml" -p server --bin latchkey >&2
  cp "$HOME/.cache/latchkey/target-previous/debug/latchkey" "$bin.tmp"
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
