#!/usr/bin/env bash
# A/B of bench/asgi_overhead.py between a commit and the working tree, alternated, one CPU:
#   bench/ab_overhead.sh COMMIT [ROUNDS_OF_AB]        (default 3)
# A = COMMIT's aeros/ and aeros_core/ (git archive into a temp dir, first on PYTHONPATH),
# B = the working tree. Rows: routed /hello on app.asgi_app for aeros (every installed plugin)
# and plain Quart (the control); columns: min and median µs of CPU per request of 5 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
git archive "$1" aeros aeros_core | tar -x -C "$base"
for _ in $(seq "${2:-3}"); do
  for side in A B; do
    path=""
    [ "$side" = A ] && path="$base"
    PYTHONPATH="$path" taskset -c 0 .venv/bin/python bench/asgi_overhead.py --rounds 5 \
      --only "aeros bare (every" --only "Quart: app" | tail -n +3 | sed "s/^/$side /"
  done
done
