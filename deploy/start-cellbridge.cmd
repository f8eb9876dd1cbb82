@echo off
rem Cell Bridge for Windows: double-click to start the daemon (the window must stay open while you use QuPath).
rem The first start installs Cell Bridge's parts (npm ci, a few minutes, needs the internet and Node.js 20.19+).
rem Extra arguments go to `cellbridge serve` (see docs\cli-reference.md).
cd /d "%~dp0\.."
where node >nul 2>nul || (echo Node.js is not installed: get the LTS installer from https://nodejs.org and run this again. & pause & exit /b 1)
if not exist node_modules\onnxruntime-node (
  echo First start: installing Cell Bridge, this takes a few minutes...
  call npm ci --no-audit --no-fund || (echo The installation failed; see the messages above. & pause & exit /b 1)
)
echo Starting Cell Bridge. Leave this window open while you use QuPath; close it (or press Ctrl+C) to stop Cell Bridge.
call npx cellbridge serve %*
pause
