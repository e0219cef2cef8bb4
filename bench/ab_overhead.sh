#!/usr/bin/env bash
# A/B of bench/asgi_overhead.py between two versions of aeros, alternated, one CPU:
#   bench/ab_overhead.sh A [ROUNDS_OF_AB] [B]        (default 3 rounds; B: the working tree)
# A (and B when given) = that commit's aeros/ and aeros_core/ (git archive into a temp dir,
# first on PYTHONPATH); the bench script itself is the working tree's for both sides.
# Rows: routed /hello and /json on app.asgi_app for aeros (every installed plugin) and plain
# Quart's /hello (the control); columns: min and median µs of CPU per request of 5 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
mkdir "$base/A" "$base/B"
git archive "$1" aeros aeros_core | tar -x -C "$base/A"
if [ -n "${3:-}" ]; then git archive "$3" aeros aeros_core | tar -x -C "$base/B"; fi
for _ in $(seq "${2:-3}"); do
  for side in A B; do
    path="$base/$side"
    [ "$side" = B ] && [ -z "${3:-}" ] && path=""
    PYTHONPATH="$path" taskset -c 0 .venv/bin/python bench/asgi_overhead.py --rounds 5 \
      --only "aeros bare (every" --only "aeros bare: app.asgi_app, /json" --only "Quart: app.asgi_app" \
      | tail -n +3 | grep -v "Quart: app.asgi_app, /json" | sed "s/^/$side /"
  done
done
