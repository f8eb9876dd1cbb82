#!/usr/bin/env bash
# The device tool carries at most 64 MiB: the working tree (~28 MiB) plus the carried paths. A node-pack call
# (.device: node 23 MB + production node_modules 21.5 MB, bench/README "WebGPU on an H200") only fits with
# the files a GPU run does not read moved out of the checkout for that call, and put back right after:
#   bash bench/gpu/slim-tree.sh out     # before the device call; prints what would travel
#   bash bench/gpu/slim-tree.sh back    # after it (also safe to run twice)
set -eu
cd "$(dirname "$0")/../.."
ASIDE=${CELLBRIDGE_ASIDE:-/tmp/cellbridge-aside}
PATHS=(models/cellbridge-he-v1 models/cellbridge-he-v2/checkpoint-fp16.pt test/fixtures .device/extra.tar.xz)
case "${1:-}" in
  out)
    for p in "${PATHS[@]}" models/overlay-*; do
      [ -e "$p" ] || continue
      mkdir -p "$ASIDE/$(dirname "$p")" && mv "$p" "$ASIDE/$p"
    done
    tree=$( (git ls-files; git ls-files --others --exclude-standard) | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done | tr '\n' '\0' | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    carry=$(du -cb .device dist/bridge dist/protocol 2>/dev/null | tail -1 | cut -f1)
    echo "moved aside to $ASIDE; working tree $((tree / 1048576)) MiB + .device, dist/bridge, dist/protocol $((carry / 1048576)) MiB (limit 64)"
    ;;
  back)
    [ -d "$ASIDE" ] || { echo "nothing aside in $ASIDE"; exit 0; }
    for p in "${PATHS[@]}"; do [ -e "$ASIDE/$p" ] && { mkdir -p "$(dirname "$p")"; mv "$ASIDE/$p" "$p"; }; done
    for f in "$ASIDE"/models/overlay-*; do [ -e "$f" ] && mv "$f" models/; done
    git status --short | head
    echo "put back from $ASIDE"
    ;;
  *) echo "usage: $0 out|back" >&2; exit 2 ;;
esac
