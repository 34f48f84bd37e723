#!/usr/bin/env bash
# A copy of an earlier commit whose packages are renamed, to serve it next to the current code:
#
#   bench/renamed_copy.sh 88beec2 /tmp/previous
#   PYTHONPATH=/tmp/previous uv run python -m bench.http_throughput --with-vk \
#       --variant previous=bench_base.bare_app:gateway_vk --duration 2 --rounds 20
#
# authcore -> authcore_base, authcore_virtual_keys -> authcore_vk_base,
# authcore_budgets -> authcore_budgets_base, bench -> bench_base (imports only).
# Both versions then run in the same wrk run, so a noisy host moves both alike.
set -euo pipefail
rev="${1:?usage: bench/renamed_copy.sh REV DEST}"
dest="${2:?usage: bench/renamed_copy.sh REV DEST}"
root="$(cd "$(dirname "$0")/.." && pwd)"
source="$(mktemp -d)"
trap 'rm -rf "$source"' EXIT
rm -rf "$dest"
mkdir -p "$dest"
git -C "$root" archive "$rev" | tar -x -C "$source"
cp -r "$source/authcore" "$dest/authcore_base"
cp -r "$source/plugins/virtual_keys/authcore_virtual_keys" "$dest/authcore_vk_base"
cp -r "$source/plugins/budgets/authcore_budgets" "$dest/authcore_budgets_base"
cp -r "$source/bench" "$dest/bench_base"
find "$dest" -name '*.py' -print0 | xargs -0 sed -i -E \
  's/\bauthcore\b/authcore_base/g; s/\bauthcore_virtual_keys\b/authcore_vk_base/g; s/\bauthcore_budgets\b/authcore_budgets_base/g; s/(from|import) bench\b/\1 bench_base/g'
