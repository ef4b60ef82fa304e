#!/usr/bin/env bash
# Runs one shard of a swarm: the piece a scheduler (GNU parallel, a Slurm array task, a
# Kubernetes Indexed Job pod) runs on one machine. docs/scaling-out.md shows each scheduler.
#
#   tools/cluster/run-shard.sh SHARD SHARDS SEEDS SCENARIO OUT_ROOT [dynasim swarm options...]
#
# SHARD is 1-based (1..SHARDS). The shard's report goes to OUT_ROOT/shard-SHARD; once every shard
# is done, `dynasim merge OUT_ROOT/shard-*  --out OUT_ROOT/merged` writes the report one machine
# would have written. DYNASIM (default: build/dynasim next to this script's repository) names the
# binary; every shard must use the same build (merge refuses reports from different builds).
set -euo pipefail
if [ "$#" -lt 5 ]; then
  sed -n '2,12p' "$0"
  exit 2
fi
shard=$1 shards=$2 seeds=$3 scenario=$4 out_root=$5
shift 5
repo=$(cd "$(dirname "$0")/../.." && pwd)
dynasim=${DYNASIM:-$repo/build/dynasim}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 1)}
mkdir -p "$out_root"
# Exit code 1 (a seed failed a check) is a result, not an error of the shard: keep it for the
# scheduler's log but let the merge see every shard's report.
status=0
"$dynasim" swarm "$scenario" --seeds "$seeds" --shard "$shard/$shards" --jobs "$jobs" \
  --out "$out_root/shard-$shard" "$@" || status=$?
if [ "$status" -gt 1 ]; then
  echo "run-shard: shard $shard/$shards ended with exit code $status" >&2
  exit "$status"
fi
echo "run-shard: shard $shard/$shards done (exit $status): $out_root/shard-$shard"
