/**
 * The Dockerfile, checked by inspection (no Docker engine is needed): a small Dockerfile parser
 * (instructions, stages, COPY sources relative to the build context, .dockerignore rules) and the
 * facts issue #5 asks for. Also `cellbridge health` against a real daemon and against none, as the
 * image's HEALTHCHECK runs it.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, posix } from 'node:path';
import { parseServeArgs } from '../bridge/cli/serve';
import { startDaemon as startInProcess } from '../bridge/server';
import { createLogger } from '../bridge/util/log';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { CLI, REPO_ROOT, startDaemon } from './helpers/daemon';

// ---------------------------------------------------------------------------------------------
// A tiny Dockerfile parser

export interface Instruction { keyword: string; args: string; line: number }
export interface CopyInstruction { from?: string; sources: string[]; dest: string; line: number }
export interface Stage {
  base: string;
  name?: string;
  index: number;
  instructions: Instruction[];
}

/** Joins continuation lines, drops comments and blank lines, splits keyword and arguments. */
export function parseDockerfile(text: string): { globalArgs: Record<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  let current: { text: string; line: number } | null = null;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (current === null && trimmed === '')) return; // comments may sit inside a continuation
    const cont = trimmed.endsWith('\\');
    const body = cont ? trimmed.slice(0, -1).trimEnd() : trimmed;
    if (current === null) current = { text: body, line: i + 1 };
    else current.text += ' ' + body;
    if (!cont) {
      const m = /^(\S+)\s*(.*)$/s.exec(current.text.trim());
      if (m) instructions.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: current.line });
      current = null;
    }
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--platform'));
      const base = words[0].replace(/\$\{?(\w+)\}?/g, (_m, v: string) => globalArgs[v] ?? '');
      const name = words[1]?.toUpperCase() === 'AS' ? words[2] : undefined;
      stages.push({ base, name, index: stages.length, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`line ${ins.line}: ${ins.keyword} before the first FROM`);
      const [k, v] = ins.args.split('=');
      globalArgs[k.trim()] = (v ?? '').trim();
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** Exec form (JSON array) or shell form, as words. */
export function commandWords(args: string): string[] {
  const t = args.trim();
  if (t.startsWith('[')) return JSON.parse(t) as string[];
  return t.split(/\s+/);
}

export function parseCopy(ins: Instruction): CopyInstruction {
  const words = ins.args.trim().startsWith('[') ? commandWords(ins.args) : ins.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1), dest: paths[paths.length - 1], line: ins.line };
}

/** KEY=value pairs of ENV (quotes allowed), or the legacy "ENV KEY value". */
export function parseEnv(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!args.includes('=') || /^\S+\s/.test(args) && !/^\S+=/.test(args)) {
    const [k, ...rest] = args.split(/\s+/);
    out[k] = rest.join(' ');
    return out;
  }
  const re = /(\w+)=("([^"]*)"|'([^']*)'|(\S*))/g;
  for (let m = re.exec(args); m; m = re.exec(args)) out[m[1]] = m[3] ?? m[4] ?? m[5] ?? '';
  return out;
}

// .dockerignore: Docker's rules (moby/patternmatcher): a path is excluded when the last pattern
// matching it, or any of its parent folders, is not a "!" pattern.
export interface IgnoreRule { negate: boolean; re: RegExp }

export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (let line of text.split('\n')) {
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    let p = posix.normalize((negate ? line.slice(1) : line).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
    if (p === '.') p = '';
    let re = '';
    for (let i = 0; i < p.length; i++) {
      const c = p[i];
      if (c === '*' && p[i + 1] === '*') {
        i++;
        if (p[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    rules.push({ negate, re: new RegExp(`^${re}$`) });
  }
  return rules;
}

export function isIgnored(rules: IgnoreRule[], relPath: string): boolean {
  const parts = relPath.split('/').filter(Boolean);
  const candidates = parts.map((_p, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((c) => rule.re.test(c))) ignored = !rule.negate;
  }
  return ignored;
}

/** Files of the build context under relPath (a file or a folder), after .dockerignore. */
export function contextFiles(root: string, rules: IgnoreRule[], relPath: string): string[] {
  const abs = join(root, relPath);
  if (!existsSync(abs)) return [];
  if (statSync(abs).isFile()) return isIgnored(rules, relPath) ? [] : [relPath];
  const out: string[] = [];
  for (const entry of readdirSync(abs)) out.push(...contextFiles(root, rules, posix.join(relPath, entry)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// What each stage holds: paths copied in, made by a known RUN, or shipped by its base image.

interface StageFs { workdir: string; paths: Set<string>; user: string; env: Record<string, string>; users: Set<string> }

const BASE_IMAGE_PATHS: [RegExp, string[], string[]][] = [
  // [base image, paths it ships, users it has]
  [/^node:/, ['/usr/local/bin/node', '/usr/local/bin/npm'], ['root', 'node']],
  [/^nvidia\/cuda:/, ['/usr/bin', '/usr/lib'], ['root']],
];

function simulate(stages: Stage[], pkg: { scripts: Record<string, string> }, tsconfig: { compilerOptions: { outDir: string } }): Map<string, StageFs> {
  const byName = new Map<string, StageFs>();
  const resolveIn = (fs: StageFs, p: string) => posix.resolve(fs.workdir, p).replace(/\/$/, '') || '/';
  for (const stage of stages) {
    const parent = byName.get(stage.base);
    const fs: StageFs = parent
      ? { workdir: parent.workdir, paths: new Set(parent.paths), user: parent.user, env: { ...parent.env }, users: new Set(parent.users) }
      : { workdir: '/', paths: new Set(), user: 'root', env: {}, users: new Set(['root']) };
    for (const [re, paths, users] of BASE_IMAGE_PATHS) {
      if (re.test(stage.base)) { paths.forEach((p) => fs.paths.add(p)); users.forEach((u) => fs.users.add(u)); }
    }
    for (const ins of stage.instructions) {
      if (ins.keyword === 'WORKDIR') fs.workdir = resolveIn(fs, ins.args);
      if (ins.keyword === 'USER') fs.user = ins.args.split(':')[0];
      if (ins.keyword === 'ENV') Object.assign(fs.env, parseEnv(ins.args));
      if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
        const c = parseCopy(ins);
        const intoDir = c.dest.endsWith('/') || c.sources.length > 1;
        for (const src of c.sources) {
          const target = intoDir && !src.endsWith('/') ? posix.join(resolveIn(fs, c.dest), posix.basename(src)) : resolveIn(fs, c.dest);
          fs.paths.add(target);
        }
      }
      if (ins.keyword === 'RUN') {
        const run = ins.args;
        if (/\bnpm (ci|install)\b/.test(run)) fs.paths.add(resolveIn(fs, 'node_modules'));
        // `npm run build` runs package.json's build script; `tsc -p` writes tsconfig's outDir.
        const build = /\bnpm run build\b/.test(run) ? pkg.scripts.build : run;
        if (/\btsc\b.*-p\b/.test(build ?? '')) fs.paths.add(resolveIn(fs, tsconfig.compilerOptions.outDir));
        const m = /useradd\b.*?\s([a-z_][a-z0-9_-]*)\s*(?:&&|$)/.exec(run);
        if (m) fs.users.add(m[1]);
      }
    }
    byName.set(stage.name ?? String(stage.index), fs);
  }
  return byName;
}

function holds(fs: StageFs, absPath: string): boolean {
  const p = absPath.replace(/\/$/, '');
  for (const known of fs.paths) if (p === known || p.startsWith(known + '/')) return true;
  return false;
}

/** COPY sources that would break the build: missing, excluded by .dockerignore, or not made in the --from stage. */
function copyProblems(stages: Stage[], fsOf: Map<string, StageFs>, rules: IgnoreRule[]): string[] {
  const problems: string[] = [];
  for (const s of stages) {
    for (const ins of s.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
      const c = parseCopy(ins);
      for (const src of c.sources) {
        if (c.from) {
          const from = fsOf.get(c.from);
          if (!from) problems.push(`line ${c.line}: --from=${c.from} is not a stage`);
          else if (!holds(from, posix.resolve(from.workdir, src))) problems.push(`line ${c.line}: ${src} is not made in stage ${c.from}`);
        } else {
          const rel = posix.normalize(src).replace(/\/$/, '');
          if (!existsSync(join(REPO_ROOT, rel))) problems.push(`line ${c.line}: ${src} does not exist in the repository`);
          else if (contextFiles(REPO_ROOT, rules, rel).length === 0) problems.push(`line ${c.line}: ${src} is excluded by .dockerignore`);
        }
      }
    }
  }
  return problems;
}

/** The stages a target needs: its FROM chain and every --from. */
function stagesFor(target: string, stages: Stage[]): Stage[] {
  const byName = new Map(stages.map((s) => [s.name ?? String(s.index), s]));
  const need = new Set<Stage>();
  const visit = (name: string) => {
    const s = byName.get(name);
    if (!s || need.has(s)) return;
    need.add(s);
    visit(s.base);
    for (const ins of s.instructions) if (ins.keyword === 'COPY') { const f = parseCopy(ins).from; if (f) visit(f); }
  };
  visit(target);
  return stages.filter((s) => need.has(s));
}

// ---------------------------------------------------------------------------------------------

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(dockerfile);
const rules = parseDockerignore(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8'));
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8'));
const fsOf = simulate(stages, pkg, tsconfig);
const stage = (name: string) => stages.find((s) => s.name === name)!;
const last = (s: Stage, keyword: string) => [...s.instructions].reverse().find((i) => i.keyword === keyword);
/** The final instruction of a kind in a stage or, failing that, in the stage it is built FROM. */
const effective = (s: Stage, keyword: string): Instruction | undefined => {
  const own = last(s, keyword);
  if (own) return own;
  const parent = stages.find((p) => p.name === s.base);
  return parent ? effective(parent, keyword) : undefined;
};

describe('the parser itself', () => {
  it('reads stages, continuations, COPY flags and ENV pairs', () => {
    const { globalArgs, stages: st } = parseDockerfile('ARG IMG=node:20\n# c\nFROM ${IMG} AS a\nRUN echo 1 \\\n  # inside\n && echo 2\nCOPY --from=a --chown=1:1 x y /z/\nENV A=1 B="two words"\nFROM a\n');
    assert.equal(globalArgs.IMG, 'node:20');
    assert.deepEqual(st.map((s) => [s.base, s.name]), [['node:20', 'a'], ['a', undefined]]);
    assert.equal(st[0].instructions[0].args, 'echo 1 && echo 2');
    assert.deepEqual(parseCopy(st[0].instructions[1]), { from: 'a', sources: ['x', 'y'], dest: '/z/', line: 7 });
    assert.deepEqual(parseEnv(st[0].instructions[2].args), { A: '1', B: 'two words' });
    assert.deepEqual(parseEnv('LEGACY some value'), { LEGACY: 'some value' });
  });

  it('finds broken COPY instructions', () => {
    const bad = parseDockerfile([
      'FROM node:20-bookworm-slim AS build', 'WORKDIR /app', 'COPY package.json ./', 'COPY no-such-file ./',
      'COPY bridge/ ./bridge/', 'RUN npm ci', 'FROM node:20-bookworm-slim AS run', 'COPY --from=build /app/dist ./dist',
      'COPY --from=build /app/node_modules ./node_modules', 'COPY --from=nowhere /x /x', 'COPY test/ ./test/',
    ].join('\n'));
    const r = parseDockerignore('*\n!package.json\n!bridge/\n');
    const problems = copyProblems(bad.stages, simulate(bad.stages, pkg, tsconfig), r);
    assert.deepEqual(problems.map((p) => p.replace(/^line \d+: /, '')), [
      'no-such-file does not exist in the repository',
      '/app/dist is not made in stage build', // no `npm run build` there
      '--from=nowhere is not a stage',
      'test/ is excluded by .dockerignore',
    ]);
  });

  it('applies .dockerignore like Docker: last match wins, parents count, ** spans folders', () => {
    const r = parseDockerignore('*\n!bridge/\n!models\nmodels/training/\n**/*.pt\n');
    assert.equal(isIgnored(r, 'node_modules/x/index.js'), true);
    assert.equal(isIgnored(r, 'bridge/cli.ts'), false);
    assert.equal(isIgnored(r, 'models/a/card.json'), false);
    assert.equal(isIgnored(r, 'models/training/train.py'), true);
    assert.equal(isIgnored(r, 'models/a/last.pt'), true);
    assert.equal(isIgnored(r, 'Dockerfile'), true);
  });
});

describe('Dockerfile (by inspection)', () => {
  it('has the two targets, cpu on node:20-bookworm-slim and gpu on a CUDA 12 + cuDNN 9 runtime', () => {
    assert.ok(stage('cpu'), 'target cpu');
    assert.ok(stage('gpu'), 'target gpu');
    assert.match(stage('cpu').base, /^node:20(\.\d+)*-bookworm-slim$/);
    assert.match(stage('gpu').base, /^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-ubuntu\d\d\.\d\d$/);
  });

  // Docker's classic builder (DOCKER_BUILDKIT=0, still the default on many installs) builds every
  // stage from the first up to the --target, in file order; BuildKit builds only the stages the
  // target needs. Neither may touch a CUDA base image or NuGet for --target cpu.
  const classicBuild = (target: string) => stages.slice(0, stages.findIndex((s) => s.name === target) + 1);
  const touchesCuda = (s: Stage) => /cuda/i.test(s.base) || s.instructions.some((i) => /cuda|nuget/i.test(i.args) && i.keyword !== 'LABEL');
  it('--target cpu builds no CUDA/NuGet stage, under the classic builder (file order) or BuildKit (dependencies)', () => {
    for (const [builder, built] of [['classic', classicBuild('cpu')], ['BuildKit', stagesFor('cpu', stages)]] as const) {
      assert.deepEqual(built.filter(touchesCuda).map((s) => s.name), [], `${builder}: ${built.map((s) => s.name).join(', ')}`);
    }
    assert.deepEqual(classicBuild('cpu').map((s) => s.name), stagesFor('cpu', stages).map((s) => s.name), 'every stage before cpu is one cpu needs');
    // The checks can see a CUDA stage: the GPU target does build them.
    assert.ok(classicBuild('gpu').some(touchesCuda) && stagesFor('gpu', stages).some(touchesCuda));
  });

  // A bare -p 8765:8765 publishes on every interface of the host. The docs publish on 127.0.0.1, and
  // name 0.0.0.0 explicitly where they mean other computers to connect (with the token).
  it('the docs build with an explicit --target and publish the port on an explicit address (127.0.0.1 by default)', () => {
    let loopback = 0;
    const files = ['README.md', 'Dockerfile', 'docker-compose.yml', ...(existsSync(join(REPO_ROOT, 'docs')) ? readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`) : [])];
    for (const f of files) {
      const text = readFileSync(join(REPO_ROOT, f), 'utf8');
      for (const m of text.matchAll(/^\s*(?:[#$]\s*)?docker build\b.*$/gm)) assert.match(m[0], /--target (cpu|gpu)\b/, `${f}: "${m[0]}" names its target`);
      for (const m of text.matchAll(/(?:-p|--publish)[ =]"?([\d.:]+)"?/g)) assert.match(m[1], /^(127\.0\.0\.1|0\.0\.0\.0):/, `${f}: "${m[0]}" names the host address`);
      for (const m of text.matchAll(/^\s*- "?([\d.:]+:\d+)"?\s*$/gm)) assert.match(m[1], /^127\.0\.0\.1:/, `${f}: ports entry "${m[1]}" publishes on loopback`);
      loopback += (text.match(/127\.0\.0\.1:8765:8765/g) ?? []).length;
    }
    assert.ok(loopback >= 3, 'the examples publish on 127.0.0.1');
  });

  it('every COPY source exists in the build context (after .dockerignore) or in the stage it comes from', () => {
    assert.deepEqual(copyProblems(stages, fsOf, rules), []);
  });

  it('builds with npm ci, npm run build (tsc into dist/) and prunes the dev dependencies', () => {
    const runs = stage('build').instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs, /npm ci\b/);
    assert.match(runs, /npm run build\b/);
    assert.match(pkg.scripts.build, /^tsc -p /);
    assert.equal(tsconfig.compilerOptions.outDir, 'dist');
    assert.match(runs, /npm prune --omit=dev/);
    // The sources tsc needs are in the stage before it runs, and the CLI it makes is what the images start.
    for (const p of ['/app/tsconfig.json', '/app/bridge', '/app/protocol', '/app/package-lock.json', '/app/.npmrc']) assert.ok(holds(fsOf.get('build')!, p), p);
    assert.ok(existsSync(join(REPO_ROOT, 'bridge', 'cli.ts')), 'bridge/cli.ts → dist/bridge/cli.js');
  });

  it('the GPU image installs onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12 (overriding .npmrc)', () => {
    assert.match(readFileSync(join(REPO_ROOT, '.npmrc'), 'utf8'), /onnxruntime-node-install=skip/);
    const gpuChain = stagesFor('gpu', stages);
    const runs = gpuChain.flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).join('\n');
    assert.match(runs, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    assert.match(runs, /libonnxruntime_providers_cuda\.so/, 'the build checks that the CUDA provider arrived');
    const cpuRuns = stagesFor('cpu', stages).flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).join('\n');
    assert.doesNotMatch(cpuRuns, /cuda12/, 'the CPU image needs no internet for CUDA libraries');
    const gpuCopies = stage('gpu').instructions.filter((i) => i.keyword === 'COPY').map(parseCopy);
    assert.ok(gpuCopies.some((c) => c.from === 'gpu-deps' && c.sources.some((s) => s.includes('node_modules'))), 'GPU image takes node_modules with the CUDA libraries');
    assert.ok(holds(fsOf.get('gpu')!, '/usr/local/bin/node'), 'Node 20 in the CUDA image');
  });

  for (const target of ['cpu', 'gpu']) {
    describe(`target ${target}`, () => {
      const s = () => stage(target);
      const fs = () => fsOf.get(target)!;

      it('runs as a non-root user that exists in the image', () => {
        const user = fs().user;
        assert.notEqual(user, 'root');
        assert.notEqual(user, '0');
        assert.ok(fs().users.has(user), `user ${user} is created or shipped by the base image`);
      });

      it('installs a font (the overlay legend is text drawn by librsvg; without a font it is empty boxes)', () => {
        const runs = stagesFor(target, stages).flatMap((st) => st.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).join('\n');
        assert.match(runs, /apt-get install[^\n]*\bfonts-dejavu-core\b/);
      });

      it('turns onnxruntime telemetry off (ORT_DISABLE_TELEMETRY=1)', () => {
        assert.equal(fs().env.ORT_DISABLE_TELEMETRY, '1');
      });

      it('exposes 8765 and serves on it', () => {
        assert.ok(s().instructions.some((i) => i.keyword === 'EXPOSE' && i.args.split(/\s+/).includes('8765')));
        assert.equal(fs().env.CELLBRIDGE_PORT ?? '8765', '8765');
      });

      it('starts `cellbridge serve`, the command of package.json ("start") and bin', () => {
        const entry = effective(s(), 'ENTRYPOINT');
        const cmd = effective(s(), 'CMD');
        const words = [...(entry ? commandWords(entry.args) : []), ...(cmd ? commandWords(cmd.args) : [])];
        assert.deepEqual(words.slice(0, 3), ['node', 'dist/bridge/cli.js', 'serve']);
        assert.equal(pkg.scripts.start, 'node dist/bridge/cli.js serve');
        assert.equal(pkg.bin.cellbridge, 'dist/bridge/cli.js');
        const readme = join(REPO_ROOT, 'README.md');
        if (existsSync(readme)) assert.match(readFileSync(readme, 'utf8'), /(node dist\/bridge\/cli\.js|cellbridge) serve\b/, 'the README starts the daemon the same way');
        assert.ok(holds(fs(), posix.resolve(fs().workdir, 'dist/bridge/cli.js')), 'dist/bridge/cli.js is in the image');
        assert.ok(holds(fs(), posix.resolve(fs().workdir, 'package.json')), 'package.json (the daemon reads its version from it)');
      });

      it('has a HEALTHCHECK that calls the daemon with `cellbridge health`', () => {
        const hc = last(s(), 'HEALTHCHECK');
        assert.ok(hc, 'HEALTHCHECK');
        const cmd = hc!.args.replace(/^(--\S+\s+)*/, '');
        assert.match(cmd, /^CMD\s/);
        const words = commandWords(cmd.slice(3));
        const at = words.indexOf('health');
        assert.ok(at > 0 && (words[at - 1].endsWith('dist/bridge/cli.js') || words[at - 1] === 'cellbridge'), words.join(' '));
        assert.match(hc!.args, /--start-period=\d+s/, 'time to load the model before failures count');
      });

      it('listens beyond loopback only together with a token, and bakes no token into the image', () => {
        const entry = effective(s(), 'ENTRYPOINT'), cmd = effective(s(), 'CMD');
        const words = [...(entry ? commandWords(entry.args) : []), ...(cmd ? commandWords(cmd.args) : [])];
        const hostFlag = words.indexOf('--host');
        const host = hostFlag >= 0 ? words[hostFlag + 1] : fs().env.CELLBRIDGE_HOST ?? '127.0.0.1';
        assert.ok(!('CELLBRIDGE_TOKEN' in fs().env) && !words.includes('--token'), 'no token in the image');
        assert.ok(!stagesFor(target, stages).some((st) => st.instructions.some((i) => i.keyword === 'ARG' && /TOKEN/i.test(i.args))), 'no token build argument');
        // The same settings, without a token: the daemon must refuse to start (checked in the next test).
        assert.equal(host, '0.0.0.0', 'reachable through -p 8765:8765');
        const config = parseServeArgs(words.slice(3), { ...fs().env, CELLBRIDGE_TOKEN: '' });
        assert.equal(config.host, '0.0.0.0');
        assert.equal(config.token, undefined);
      });
    });
  }

  it('the daemon refuses the image\'s 0.0.0.0 without a token, and starts with one', async () => {
    const env = fsOf.get('cpu')!.env;
    const modelsDir = makeSyntheticModelsDir();
    try {
      const noToken = parseServeArgs(['--port', '0', '--models', modelsDir], { ...env, CELLBRIDGE_TOKEN: '' });
      await assert.rejects(startInProcess(noToken, createLogger('silent')), /refusing to listen on 0\.0\.0\.0 without a token/);
      const withToken = parseServeArgs(['--port', '0', '--models', modelsDir], { ...env, CELLBRIDGE_TOKEN: 'a-long-enough-test-token' });
      const daemon = await startInProcess(withToken, createLogger('silent'));
      try {
        assert.equal(daemon.host, '0.0.0.0');
        assert.equal(daemon.provider.name, 'cpu', 'the CPU image asks for --device cpu');
      } finally { await daemon.close(0); }
    } finally { rmSync(modelsDir, { recursive: true, force: true }); }
  });

  it('ships the default model: the one models/default.json names, else the first ready one', () => {
    const models = contextFiles(REPO_ROOT, rules, 'models');
    assert.ok(!models.some((f) => f.startsWith('models/training/')), 'no training code or checkpoints in the image');
    assert.ok(!models.some((f) => f.endsWith('.pt') || f.includes('/reference/')), 'no checkpoints or reference outputs');
    const hasDefault = existsSync(join(REPO_ROOT, 'models', 'default.json'));
    if (hasDefault) assert.ok(models.includes('models/default.json'));
    // The registry's rule (bridge/inference/model-registry.ts): default.json's name, else the first folder with a card.
    const name: string = hasDefault
      ? JSON.parse(readFileSync(join(REPO_ROOT, 'models', 'default.json'), 'utf8')).default
      : readdirSync(join(REPO_ROOT, 'models')).sort().find((d) => existsSync(join(REPO_ROOT, 'models', d, 'card.json')))!;
    assert.ok(name, 'a model in models/');
    const card = JSON.parse(readFileSync(join(REPO_ROOT, 'models', name, 'card.json'), 'utf8'));
    assert.equal(card.name, name);
    assert.ok(models.includes(`models/${name}/card.json`), `${name}/card.json`);
    assert.ok(models.includes(posix.normalize(`models/${name}/${card.file}`)), `${name}/${card.file}`);
    if (card.cpuFile) assert.ok(models.includes(posix.normalize(`models/${name}/${card.cpuFile}`)), `${name}/${card.cpuFile} (the file the CPU image runs)`);
  });

  it('.dockerignore keeps node_modules, dist, tests, the git folder and logs out of the build context', () => {
    for (const p of ['node_modules/ws/index.js', 'dist/bridge/cli.js', 'test/docker.test.ts', '.git/HEAD', 'x.log', 'models/training/runs/a/last.pt', 'Dockerfile']) {
      assert.ok(isIgnored(rules, p), p);
    }
    for (const p of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'bridge/cli.ts', 'protocol/messages.ts']) assert.ok(!isIgnored(rules, p), p);
  });
});

describe('docker-compose.yml', () => {
  it('builds the gpu target, reserves an NVIDIA GPU, needs CELLBRIDGE_TOKEN and publishes 8765', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const yaml = require('js-yaml') as { load(text: string): unknown };
    const doc = yaml.load(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, { build: { target: string }; ports: string[]; environment: Record<string, string>; deploy?: { resources: { reservations: { devices: { driver: string; capabilities: string[] }[] } } } }>;
    };
    const gpu = Object.values(doc.services).find((s) => s.build.target === 'gpu')!;
    assert.ok(gpu, 'a service built from the gpu target');
    const device = gpu.deploy!.resources.reservations.devices[0];
    assert.equal(device.driver, 'nvidia');
    assert.deepEqual(device.capabilities, ['gpu']);
    assert.ok(gpu.ports.some((p) => /8765:8765$/.test(String(p))));
    assert.match(gpu.environment.CELLBRIDGE_TOKEN, /^\$\{CELLBRIDGE_TOKEN:\?/, 'compose stops when the token is not set');
    for (const s of Object.values(doc.services)) assert.ok(['cpu', 'gpu'].includes(s.build.target), 'only targets the Dockerfile has');
  });
});

// ---------------------------------------------------------------------------------------------

function runHealth(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'health', ...args], { env: { ...process.env, CELLBRIDGE_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

describe('cellbridge health (the image\'s HEALTHCHECK)', function () {
  this.timeout(60_000);
  const token = 'health-check-token-0123456789';
  let modelsDir: string;
  before(() => { modelsDir = makeSyntheticModelsDir(); });
  after(() => rmSync(modelsDir, { recursive: true, force: true }));

  it('exits 0 against a running daemon with a ready model, using CELLBRIDGE_PORT and CELLBRIDGE_TOKEN', async () => {
    const d = await startDaemon({ modelsDir, env: { CELLBRIDGE_TOKEN: token } });
    try {
      const ok = await runHealth({ CELLBRIDGE_PORT: String(d.port), CELLBRIDGE_TOKEN: token });
      assert.equal(ok.code, 0, ok.stderr);
      const report = JSON.parse(ok.stdout);
      assert.equal(report.ok, true);
      assert.equal(report.modelsReady, 1);
      const wrong = await runHealth({ CELLBRIDGE_PORT: String(d.port), CELLBRIDGE_TOKEN: 'not-the-token' });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /cellbridge health: .*(token|Unauthorized)/i);
    } finally { await d.stop(); }
  });

  it('exits 1 when the daemon runs but has no ready model', async () => {
    const empty = makeSyntheticModelsDir(undefined, undefined);
    rmSync(join(empty, 'synthetic', 'model.onnx'));
    const d = await startDaemon({ modelsDir: empty });
    try {
      const r = await runHealth({ CELLBRIDGE_PORT: String(d.port) });
      assert.equal(r.code, 1);
      assert.equal(JSON.parse(r.stdout).ok, false);
    } finally { await d.stop(); rmSync(empty, { recursive: true, force: true }); }
  });

  it('exits 1 with a clear message when no daemon listens', async () => {
    const port = await freePort();
    const r = await runHealth({ CELLBRIDGE_PORT: String(port) });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^cellbridge health: cannot connect to the Cell Bridge daemon at ws://127\\.0\\.0\\.1:${port}/: .*ECONNREFUSED`));
  });
});
