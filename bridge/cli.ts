#!/usr/bin/env node
/** The `cellbridge` command. */
import { ResponseError } from 'vscode-jsonrpc';
import { serve, SERVE_USAGE } from './cli/serve';
import { segment, SEGMENT_USAGE } from './cli/segment';
import { health, HEALTH_USAGE } from './cli/health';
import { overlay, OVERLAY_USAGE } from './cli/overlay';
import { UsageError } from './cli/args';
import { UnsupportedImageError } from './images/slide-reader';
import { ProviderUnavailable } from './inference/providers';
import { VERSION } from './server';

const USAGE = `Cell Bridge ${VERSION}: cell segmentation and classification for QuPath

Usage:
  ${SERVE_USAGE}
  ${SEGMENT_USAGE}
  ${HEALTH_USAGE}
  ${OVERLAY_USAGE}
  cellbridge --version`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': await serve(rest); return -1; // keeps running
    case 'segment': return segment(rest);
    case 'health': return health(rest);
    case 'overlay': return overlay(rest);
    case '--version': case '-v': process.stdout.write(VERSION + '\n'); return 0;
    case undefined: case 'help': case '--help': case '-h': process.stdout.write(USAGE + '\n'); return command === undefined ? 2 : 0;
    default: throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (err: unknown) => {
  const e = err as Error;
  if (e instanceof UsageError || (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (e as { code?: string }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    process.stderr.write(`cellbridge: ${e.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (e instanceof UnsupportedImageError || e instanceof ProviderUnavailable || e instanceof ResponseError) {
    process.stderr.write(`cellbridge: ${e.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`cellbridge: ${e?.message ?? String(err)}\n`);
    process.exitCode = 1;
  }
});
