#!/usr/bin/env bash
# CI time of two revisions, one after the other on this machine: each is
# cloned fresh (no target/), then `.ci/run` runs with CI=true under GNU time.
# Prints wall and CPU (user + sys) seconds and the test count of each.
#
#   bench/ci_time.sh BASE_REV HEAD_REV [WORK_DIR]
#
# Takes as long as two CI runs (20–50 minutes each on 2 cores). CPU time is
# the steadier figure when other jobs share the machine.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 64; }
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${3:-$(mktemp -d)}
mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "bench/ci_time.sh: needs GNU time (/usr/bin/time)" >&2; exit 1; }
for rev in "$1" "$2"; do
  sha=$(git -C "$repo" rev-parse --short "$rev")
  dir="$work/$sha"
  rm -rf "$dir"
  git clone --quiet --no-local "$repo" "$dir"
  git -C "$dir" checkout --quiet "$sha"
  start=$(date +%s)
  rc=0
  (cd "$dir" && CI=true /usr/bin/time -f "%U %S" -o "$work/$sha.time" .ci/run > "$work/$sha.log" 2>&1) || rc=$?
  wall=$(( $(date +%s) - start ))
  read -r user sys < "$work/$sha.time"
  tests=$(grep -E '^test result' "$work/$sha.log" | awk '{s += $4} END {print s + 0}')
  printf '%s  exit %s  wall %ss  cpu %.0fs (user %s, sys %s)  %s tests  log %s\n' \
    "$sha" "$rc" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" "$user" "$sys" "$tests" "$work/$sha.log"
done
