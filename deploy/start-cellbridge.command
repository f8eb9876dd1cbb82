#!/bin/bash
# Cell Bridge for macOS and Linux: double-click (or run) to start the
# daemon; the Terminal window must stay open while you use QuPath. The first start installs Cell
# Bridge's parts (npm ci, a few minutes, needs the internet and Node.js 20.19+).
# Extra arguments go to `cellbridge serve` (see docs/cli-reference.md).
cd "$(dirname "$0")/.." || exit 1
if ! command -v node >/dev/null 2>&1; then
  echo "Node.js is not installed: get the LTS installer from https://nodejs.org and run this again."
  read -r -p "Press Enter to close this window." _; exit 1
fi
if [ ! -d node_modules/onnxruntime-node ]; then
  echo "First start: installing Cell Bridge, this takes a few minutes..."
  npm ci --no-audit --no-fund || { echo "The installation failed; see the messages above."; read -r -p "Press Enter to close this window." _; exit 1; }
fi
echo "Starting Cell Bridge. Leave this window open while you use QuPath; close it (or press Ctrl+C) to stop Cell Bridge."
exec npx cellbridge serve "$@"
