/**
 * Executable documentation: every `sh`/`bash` code block of README.md and docs/*.md runs here, in a
 * scratch folder holding CMU-1-Small-Region.svs, with `cellbridge` (and `npx cellbridge`) on the PATH
 * and the docs' port 8765 replaced by a free one. A block that cannot run here carries the marker
 * `<!-- doc-test: skip (reason) -->` on the line before it; `<!-- doc-test: background "text" -->`
 * starts a long-running command and passes once it prints the text. Also: relative links and their
 * #anchors resolve, and the guides say what the issue asked of them.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { CLI, REPO_ROOT, SHARED_DATA } from './helpers/daemon';

export interface DocBlock { file: string; line: number; lang: string; code: string; marker: { kind: 'run' | 'skip' | 'background'; arg: string } }

const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);
const BLOCK_TIMEOUT_MS = 180_000;

/** The shell code blocks of a Markdown text, with the doc-test marker on the line before each. */
export function shellBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j])) j++;
    const code = lines.slice(i + 1, j).map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n');
    if (SHELL_LANGS.has(open[2])) {
      const prev = lines[i - 1]?.trim() ?? '';
      const m = /^<!--\s*doc-test:\s*(\w+)\s*(.*?)\s*-->$/.exec(prev);
      const kind = (m?.[1] ?? 'run') as DocBlock['marker']['kind'];
      if (!['run', 'skip', 'background'].includes(kind)) throw new Error(`${file}:${i}: unknown doc-test marker "${prev}"`);
      blocks.push({ file, line: i + 2, lang: open[2], code, marker: { kind, arg: m?.[2] ?? '' } });
    }
    i = j;
  }
  return blocks;
}

const DOCS = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const text = (f: string) => readFileSync(join(REPO_ROOT, f), 'utf8');

/** GitHub's anchor for a heading. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s-]/gu, '').replace(/\s/g, '-');
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

describe('docs: structure, links, markers', () => {
  it('every shell block is run, or skipped with a reason, or a background block with the text it waits for', () => {
    const all = DOCS.flatMap((f) => shellBlocks(f, text(f)));
    assert.ok(all.filter((b) => b.marker.kind !== 'skip').length >= 5, 'the docs have blocks that run here');
    for (const b of all) {
      if (b.marker.kind === 'skip') assert.match(b.marker.arg, /^\(.{8,}\)$/, `${b.file}:${b.line}: say why it cannot run here`);
      if (b.marker.kind === 'background') assert.match(b.marker.arg, /^".+"$/, `${b.file}:${b.line}: the text to wait for, in quotes`);
      // Commands that must never run unmarked: they change this checkout or need what CI lacks.
      if (/\b(npm ci|npm test|docker|QuPath script)\b/.test(b.code)) assert.equal(b.marker.kind, 'skip', `${b.file}:${b.line} must be marked skip`);
    }
    const parsed = shellBlocks('x.md', 'a\n<!-- doc-test: skip (no engine here) -->\n```sh\ndocker ps\n```\n  ```bash\n  echo 1\n  ```\n```json\n{}\n```\n');
    assert.deepEqual(parsed.map((b) => [b.marker.kind, b.code, b.line]), [['skip', 'docker ps', 4], ['run', 'echo 1', 7]]);
  });

  it('relative links and #anchors in README.md, docs/ and protocol/README.md point at something that exists', () => {
    const problems: string[] = [];
    for (const f of [...DOCS, 'protocol/README.md']) {
      for (const m of text(f).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^(https?:|mailto:)/.test(target)) continue;
        const [path, anchor] = target.split('#');
        const file = path ? join(dirname(join(REPO_ROOT, f)), path) : join(REPO_ROOT, f);
        if (!existsSync(file)) { problems.push(`${f}: ${target} (no such file)`); continue; }
        if (anchor && file.endsWith('.md')) {
          const anchors = [...readFileSync(file, 'utf8').matchAll(/^#{1,6}\s+(.+)$/gm)].map((h) => slug(h[1]));
          if (!anchors.includes(anchor)) problems.push(`${f}: ${target} (no heading #${anchor} in ${relative(REPO_ROOT, file)})`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('README starts with the two commands and links every guide', () => {
    const readme = text('README.md');
    const firstBlock = shellBlocks('README.md', readme)[0];
    assert.match(firstBlock.code, /^npm ci && npx cellbridge serve\b/m);
    assert.match(firstBlock.code, /^npm test\b/m);
    assert.ok(readme.indexOf(firstBlock.code) < 400, 'the two commands come first');
    for (const g of ['docs/pathologist.md', 'docs/power-user.md', 'docs/cli-reference.md', 'docs/docker.md', 'docs/client-author.md', 'protocol/README.md']) {
      assert.ok(readme.includes(`](${g})`), g);
    }
    assert.match(readFileSync(join(REPO_ROOT, '.ci', 'run'), 'utf8'), /^npm test$/m, '.ci/run runs the README\'s test command');
  });

  it('the README\'s `npx cellbridge` runs the package\'s own bin from the repository root (real npx)', function () {
    // npx runs dist/bridge/cli.js itself, so the build must leave it executable; the docs blocks below
    // stub npx and cannot see this (a fresh clone once failed with "cellbridge: Permission denied").
    this.timeout(60_000);
    const r = spawnSync('npx', ['--no-install', 'cellbridge', '--help'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 0, `npx cellbridge --help: ${r.stderr}`);
    assert.match(r.stdout, /^Usage:/m);
    assert.match(r.stdout, /cellbridge serve/);
  });

  it('the pathologist guide quotes the messages the QuPath scripts really print', () => {
    const guide = text('docs/pathologist.md');
    const messages = readFileSync(join(REPO_ROOT, 'qupath-scripts', 'lib', 'cellbridge', 'Messages.groovy'), 'utf8');
    const quoted = [...guide.matchAll(/^\| \*(.+?)\* \|/gm)].map((m) => m[1]);
    assert.ok(quoted.length >= 12, `${quoted.length} messages`);
    const scripts = [messages, text('qupath-scripts/Detect_cells.groovy')].join('\n');
    for (const q of quoted) {
      // Each literal piece between the placeholders (… or X/Y) is in the scripts' source.
      for (const piece of q.split(/…|\bX\b|\bY\b/).map((p) => p.trim().replace(/^[\s.,:]+|[\s.,:]+$/g, '')).filter((p) => p.length > 3)) {
        assert.ok(scripts.includes(piece), `"${piece}" (from "${q}") is not in the scripts' messages`);
      }
    }
    assert.match(guide, /Cancel\*\* in the progress window stops this detection/);
    assert.match(guide, /After a reboot/);
    assert.match(guide, /images\/overlay-cmu1\.jpg/);
    assert.ok(existsSync(join(REPO_ROOT, 'docs', 'images', 'overlay-cmu1.jpg')));
  });

  it('the launchers install on first start and run `cellbridge serve` (Windows and macOS/Linux say the same)', () => {
    const cmd = text('deploy/start-cellbridge.cmd'), sh = text('deploy/start-cellbridge.command');
    for (const t of [cmd, sh]) {
      assert.match(t, /npm ci --no-audit --no-fund/);
      assert.match(t, /npx cellbridge serve/);
      assert.match(t, /node_modules[\\/]onnxruntime-node/);
    }
    assert.ok(sh.startsWith('#!/bin/bash\n'));
  });
});

describe('docs: the commands in the code blocks run', function () {
  this.timeout(20 * 60_000);
  const CMU1 = join(SHARED_DATA, 'wsi', 'CMU-1-Small-Region.svs');
  let work: string;
  let env: NodeJS.ProcessEnv;
  let port: number;

  before(async function () {
    if (!existsSync(CMU1)) {
      console.log(`      (skipped: ${CMU1} is absent; the docs' examples segment that slide)`);
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), 'cellbridge-docs-'));
    const bin = join(work, '.bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'cellbridge'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    // `npx cellbridge` in the docs means the same command; other npx uses are not in the docs' runnable blocks.
    writeFileSync(join(bin, 'npx'), '#!/bin/sh\nif [ "$1" = cellbridge ]; then shift; exec cellbridge "$@"; fi\necho "docs test: npx $1 is not available here" >&2; exit 127\n');
    chmodSync(join(bin, 'cellbridge'), 0o755);
    chmodSync(join(bin, 'npx'), 0o755);
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, CELLBRIDGE_TOKEN: '' };
    port = await freePort();
  });
  after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

  for (const file of DOCS) {
    const blocks = shellBlocks(file, text(file)).filter((b) => b.marker.kind !== 'skip');
    if (blocks.length === 0) continue;
    it(`${file}: ${blocks.length} block(s) run as written`, async () => {
      // One scratch folder per guide: its blocks build on each other (segment, then overlay).
      const dir = join(work, file.replace(/\W/g, '_'));
      mkdirSync(dir);
      symlinkSync(CMU1, join(dir, 'CMU-1-Small-Region.svs'));
      for (const b of blocks) {
        const code = b.code.replace(/\b8765\b/g, String(port));
        const where = `${b.file}:${b.line}`;
        if (b.marker.kind === 'background') {
          const wanted = b.marker.arg.slice(1, -1);
          const child = spawn('bash', ['-c', code], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          const seen = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 90_000);
            const onData = (d: Buffer) => { out += d.toString(); if (out.includes(wanted)) { clearTimeout(timer); resolve(true); } };
            child.stdout!.on('data', onData);
            child.stderr!.on('data', onData);
            child.once('exit', () => { clearTimeout(timer); resolve(out.includes(wanted)); });
          });
          const exited = new Promise((r) => child.once('exit', r));
          if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
          await exited;
          assert.ok(seen, `${where}: "${wanted}" not printed:\n${out.slice(-2000)}`);
        } else {
          const r = spawnSync('bash', ['-eo', 'pipefail', '-c', code], { cwd: dir, env, encoding: 'utf8', timeout: BLOCK_TIMEOUT_MS, killSignal: 'SIGKILL' });
          assert.equal(r.status, 0, `${where} exited ${r.status ?? r.signal}:\n${code}\n--- stderr:\n${r.stderr.slice(-3000)}`);
        }
      }
    });
  }

  it('the power-user guide\'s commands made what they say', () => {
    const dir = join(work, 'docs_power_user_md');
    const summary = readFileSync(join(dir, 'results', 'summary.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(summary.length, 1);
    assert.equal(summary[0].status, 'completed');
    const whole = JSON.parse(readFileSync(join(dir, 'cells.geojson'), 'utf8'));
    assert.ok(whole.features.length > 1500, `${whole.features.length} cells in CMU-1`);
    const region = JSON.parse(readFileSync(join(dir, 'region-cells.geojson'), 'utf8'));
    assert.ok(region.features.length > 100 && region.features.length < whole.features.length);
    assert.ok(existsSync(join(dir, 'overlay.jpg')));
  });
});
