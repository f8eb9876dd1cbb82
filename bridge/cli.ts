#!/usr/bin/env node
/** The `cellbridge` command. */
import { ResponseError } from 'vscode-jsonrpc';
import { serve } from './cli/serve';
import { segment } from './cli/segment';
import { health } from './cli/health';
import { overlay } from './cli/overlay';
import { helpText, UsageError, usageLine } from './cli/args';
import { COMMANDS } from './cli/specs';
import { UnsupportedImageError } from './images/slide-reader';
import { ProviderUnavailable } from './inference/providers';
import { VERSION } from './server';

const USAGE = `Cell Bridge ${VERSION}: cell segmentation and classification for QuPath

Usage:
${COMMANDS.map((c) => `  ${usageLine(c)}`).join('\n')}
  cellbridge --version

\`cellbridge COMMAND --help\` lists the options of a command.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // `cellbridge X --help` and `cellbridge help X`: the option table X parses with.
  const spec = COMMANDS.find((c) => c.name === (command === 'help' ? rest[0] : command));
  if (spec && (command === 'help' || rest.includes('--help') || rest.includes('-h'))) { process.stdout.write(helpText(spec)); return 0; }
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
  if (e instanceof UsageError) {
    const hint = e.command ? `Usage: ${usageLine(e.command)}\nRun "cellbridge ${e.command.name} --help" for all options.` : USAGE;
    process.stderr.write(`cellbridge: ${e.message}\n\n${hint}\n`);
    process.exitCode = 2;
  } else if (e instanceof UnsupportedImageError || e instanceof ProviderUnavailable || e instanceof ResponseError) {
    process.stderr.write(`cellbridge: ${e.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`cellbridge: ${e?.message ?? String(err)}\n`);
    process.exitCode = 1;
  }
});
