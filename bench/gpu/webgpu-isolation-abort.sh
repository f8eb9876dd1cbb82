#!/usr/bin/env bash
# Session 13, on the lent H200 through the device tool (carry [".device", "dist/bridge", "dist/protocol"]; .device
# holds the pack of bench/README "WebGPU on an H200": node, production node_modules, the Vulkan/GL loaders
# as .deb, setup.sh, and CMU-1-Small-Region.svs). Run from the repository root: bash bench/gpu/webgpu-isolation-abort.sh
# The tree fits the 64 MiB with bench/gpu/slim-tree.sh out (then back after the call).
# (Run when WebGPU still defaulted to one session: add --inference-workers 1 to the serve lines to repeat it exactly.)
source .device/setup.sh
mkdir -p ../shared/data/wsi && cp .device/CMU-1-Small-Region.svs ../shared/data/wsi/
SVS=../shared/data/wsi/CMU-1-Small-Region.svs
run() { # name, runs, env assignments..., -- serve args...
  local name=$1 runs=$2; shift 2
  local envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" node dist/bridge/cli.js serve --port 39300 --log-level info --device webgpu "$@" > $OUT/$name-daemon.log 2>&1 &
  local d=$!
  for i in $(seq 1 60); do grep -q listening $OUT/$name-daemon.log && break; kill -0 $d 2>/dev/null || break; sleep 0.5; done
  for k in $(seq 1 $runs); do timeout 60 node dist/bridge/cli.js segment $SVS --out /tmp/$name-$k.geojson --server ws://127.0.0.1:39300/ --quiet > $OUT/$name-segment-$k.log 2>&1; echo "$name run $k rc=$? $(tail -1 $OUT/$name-segment-$k.log | cut -c1-230)"; done
  kill -0 $d 2>/dev/null && { kill $d; wait $d; echo "$name: daemon up to the end, stopped by us: $?"; } || { wait $d; echo "$name: daemon had exited: status $?"; }
  grep -h "listening\|crashed\|capped" $OUT/$name-daemon.log | cut -c1-330
  [ -f /tmp/$name-1.geojson ] && node -e 'const f=require("fs");const a=JSON.parse(f.readFileSync(process.argv[1]));console.log(process.argv[2], "features", a.features.length)' /tmp/$name-1.geojson $name
}
run process 3 X=1 --
run abort 2 CELLBRIDGE_TEST_ABORT_ON_INFERENCE=10 --
run thread 2 X=1 -- --inference-isolation thread
cmp <(node -e 'const f=require("fs");const a=JSON.parse(f.readFileSync("/tmp/process-1.geojson"));console.log(JSON.stringify(a.features.map(x=>x.geometry)))') <(node -e 'const f=require("fs");const a=JSON.parse(f.readFileSync("/tmp/abort-1.geojson"));console.log(JSON.stringify(a.features.map(x=>x.geometry)))') && echo "abort run: the same outlines as the clean run"
