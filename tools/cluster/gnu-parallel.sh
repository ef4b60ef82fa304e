#!/usr/bin/env bash
# A seed range over several machines with GNU parallel (docs/scaling-out.md).
#
#   tools/cluster/gnu-parallel.sh SHARDS SEEDS SCENARIO OUT_ROOT [--sshloginfile FILE]
#
# Without --sshloginfile the shards run on this machine, one after another per free core group.
# With it, GNU parallel runs each shard on a machine from FILE; every machine needs this
# repository built at the same commit in the same path, and OUT_ROOT on a shared file system
# (or use --return to copy results back).
set -euo pipefail
if [ "$#" -lt 4 ]; then
  sed -n '2,10p' "$0"
  exit 2
fi
shards=$1 seeds=$2 scenario=$3 out_root=$4
shift 4
repo=$(cd "$(dirname "$0")/../.." && pwd)
parallel --halt now,fail=1 --jobs 1 "$@" \
  "$repo/tools/cluster/run-shard.sh" {} "$shards" "$seeds" "$scenario" "$out_root" \
  ::: $(seq 1 "$shards")
"$repo/build/dynasim" merge $(for k in $(seq 1 "$shards"); do echo "$out_root/shard-$k"; done) \
  --out "$out_root/merged"
