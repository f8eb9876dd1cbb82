#!/usr/bin/env bash
# Session 13, on the lent H200, carried as bench/gpu/webgpu-isolation-abort.sh says: 1, 2 and 3 WebGPU sessions,
# each in its own child process. Run from the repository root: bash bench/gpu/webgpu-sessions.sh
source .device/setup.sh
mkdir -p ../shared/data/wsi && cp .device/CMU-1-Small-Region.svs ../shared/data/wsi/
SVS=../shared/data/wsi/CMU-1-Small-Region.svs
run() { # name, runs, serve args...
  local name=$1 runs=$2; shift 2
  node dist/bridge/cli.js serve --port 39300 --log-level info --device webgpu "$@" > $OUT/$name-daemon.log 2>&1 &
  local d=$!
  for i in $(seq 1 60); do grep -q listening $OUT/$name-daemon.log && break; kill -0 $d 2>/dev/null || break; sleep 0.5; done
  for k in $(seq 1 $runs); do timeout 60 node dist/bridge/cli.js segment $SVS --out /tmp/$name-$k.geojson --server ws://127.0.0.1:39300/ --quiet > /tmp/seg.log 2>&1; rc=$?; echo "{\"config\":\"$name\",\"run\":$k,\"rc\":$rc,\"summary\":$(tail -1 /tmp/seg.log)}" >> $OUT/runs.jsonl; echo "$name run $k rc=$rc $(tail -1 /tmp/seg.log | grep -o '"cells":[0-9]*\|"seconds":[0-9.]*' | tr '\n' ' ')"; done
  kill -0 $d 2>/dev/null && { kill $d; wait $d; echo "$name: daemon up to the end, stopped by us: $?"; } || { wait $d; echo "$name: daemon had exited: status $?"; }
  grep -h "crashed\|capped\|uncaught" $OUT/$name-daemon.log | cut -c1-300
}
run w1 3
run w2 3 --inference-workers 2
run w3 3 --inference-workers 3
run w2b 2 --inference-workers 2
run w1b 2
