/** Parsing, --help and the reference text of the CLI, all from the option tables in specs.ts. */
import { isTtaViews, type TtaViews } from '../inference/tta';
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { CommandSpec, OptionSpec } from './specs';
import type { WorkerIsolation } from '../workers/pool';

export class UsageError extends Error {
  constructor(message: string, readonly command?: CommandSpec) { super(message); }
}

export function intFlag(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

export function numFlag(v: string | undefined, name: string, min: number, max = Infinity): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number ${max === Infinity ? `>= ${min}` : `from ${min} to ${max}`}, got "${v}"`);
  }
  return n;
}

/** node:util parseArgs options of a command. */
export function parseArgsOptions(spec: CommandSpec): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(spec.options.map((o) => [o.name, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]));
}

export type Parsed = { help: true } | { help: false; values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };

/**
 * Parses argv with the command's table. `--help` wins over everything else; parse errors become
 * UsageErrors that name the command (node's own messages carry a stray quote).
 */
export function parseCommand(spec: CommandSpec, argv: string[]): Parsed {
  if (argv.includes('--help') || argv.includes('-h')) return { help: true };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: parseArgsOptions(spec), allowPositionals: spec.positionals > 0, strict: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${quoted?.split(' ')[0] ?? ''} for "cellbridge ${spec.name}"`, spec);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`${quoted ? quoted.split(' ')[0] : 'an option'} needs a value`, spec);
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`"cellbridge ${spec.name}" takes no argument ${quoted ? `(got "${quoted}")` : ''}`.trim(), spec);
    throw err;
  }
  if (spec.variadic && parsed.positionals.length < spec.positionals) {
    throw new UsageError(`"cellbridge ${spec.name}" takes ${spec.args} (at least ${spec.positionals} argument${spec.positionals === 1 ? '' : 's'}), got ${parsed.positionals.length}`, spec);
  }
  if (!spec.variadic && parsed.positionals.length !== spec.positionals) {
    throw new UsageError(`"cellbridge ${spec.name}" takes ${spec.args} (${spec.positionals} argument${spec.positionals === 1 ? '' : 's'}), got ${parsed.positionals.length}`, spec);
  }
  for (const o of spec.options) if (o.required && parsed.values[o.name] === undefined) throw new UsageError(`--${o.name} ${o.value ?? ''} is required`.trimEnd(), spec);
  return { help: false, values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals };
}

const flag = (o: OptionSpec) => `--${o.name}${o.value ? ` ${o.value}` : ''}`;

/** `cellbridge segment IMAGE --out FILE [options]` */
export function usageLine(spec: CommandSpec): string {
  const required = spec.options.filter((o) => o.required).map(flag);
  return ['cellbridge', spec.name, spec.args, ...required, '[options]'].filter(Boolean).join(' ');
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) { lines.push(line); line = word; } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : indent + l));
}

function optionFacts(o: OptionSpec): string {
  const facts = [o.required ? 'required' : '', o.default !== undefined ? `default ${o.default}` : '', o.env ? `env ${o.env}` : '', o.multiple ? 'repeatable' : ''].filter(Boolean);
  return facts.length ? ` [${facts.join('; ')}]` : '';
}

/** What `cellbridge <command> --help` prints. */
export function helpText(spec: CommandSpec): string {
  const out = [`Usage: ${usageLine(spec)}`, '', ...wrap(spec.summary, 100, ''), '', 'Options:'];
  const col = 34;
  for (const o of spec.options) {
    const left = `  ${o.short ? `-${o.short}, ` : '    '}${flag(o)}`;
    const body = wrap(o.help + optionFacts(o), 100 - col, ' '.repeat(col));
    out.push(left.length < col - 1 ? left.padEnd(col) + body[0] : `${left}\n${' '.repeat(col)}${body[0]}`, ...body.slice(1));
  }
  for (const n of spec.notes ?? []) out.push('', ...wrap(n, 100, ''));
  if (spec.examples?.length) out.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return out.join('\n') + '\n';
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The Markdown reference of all commands (docs/cli-reference.md). */
export function markdownReference(specs: CommandSpec[], intro: string): string {
  const out = [intro.trimEnd(), ''];
  for (const spec of specs) {
    out.push(`## \`cellbridge ${spec.name}\``, '', spec.summary, '', '```', usageLine(spec), '```', '');
    out.push('| option | default | environment | meaning |', '|---|---|---|---|');
    for (const o of spec.options) {
      const name = `${o.short ? `\`-${o.short}\`, ` : ''}\`${flag(o)}\``;
      const def = o.required ? 'required' : o.default !== undefined ? cell(o.default) : '';
      out.push(`| ${cell(name)} | ${def} | ${o.env ? `\`${o.env}\`` : ''} | ${cell(o.help)}${o.multiple ? ' (repeatable)' : ''} |`);
    }
    for (const n of spec.notes ?? []) out.push('', n);
    if (spec.examples?.length) out.push('', '<!-- doc-test: skip (examples: placeholder file names, or a daemon that keeps running) -->', '```sh', ...spec.examples, '```');
    out.push('');
  }
  return out.join('\n');
}

/** --ca CA.pem (or CELLBRIDGE_CA): the PEM certificate(s) of a private CA to trust for wss://. */
export function readCa(path: string | undefined = process.env.CELLBRIDGE_CA || undefined): string | undefined {
  if (path === undefined) return undefined;
  let pem: string;
  try { pem = readFileSync(path, 'utf8'); } catch (err) { throw new UsageError(`--ca ${path}: ${(err as Error).message}`); }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca ${path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
  return pem;
}

/** --tta: test-time augmentation views (1, 2, 4 or 8); undefined when absent. */
export function ttaFlag(v: string | undefined): TtaViews | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!isTtaViews(n)) throw new UsageError(`--tta must be 1, 2, 4 or 8, got "${v}"`);
  return n;
}

/** --inference-isolation: 'thread' or 'process' (undefined: the provider's default). */
export function isolationFlag(v: string | undefined): WorkerIsolation | undefined {
  if (v === undefined || v === '') return undefined;
  if (v !== 'thread' && v !== 'process') throw new UsageError(`--inference-isolation must be thread or process, got "${v}"`);
  return v;
}
