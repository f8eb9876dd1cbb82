/**
 * The `cellbridge` CLI's option tables: every sub-command answers --help (exit 0) with the text made
 * from the table it parses with, every option in that table parses, unknown options give a clean
 * usage error, and docs/cli-reference.md is the current rendering of the tables.
 * Also `cellbridge overlay`: scales 0.25–4, regions past the image edge, the legend.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { helpText, parseArgsOptions, parseCommand, UsageError } from '../bridge/cli/args';
import { clipRegion } from '../bridge/cli/overlay';
import { COMMANDS, DEVICES, SERVE, type CommandSpec } from '../bridge/cli/specs';
import { cliReference, REFERENCE_PATH } from '../bridge/cli/write-reference';
import { parseServeArgs } from '../bridge/cli/serve';
import { DEVICE_CHOICES } from '../bridge/inference/providers';
import { DEFAULT_LIMITS } from '../bridge/config';
import { CLI } from './helpers/daemon';

function cellbridge(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A value each option accepts, to show that the parser knows every option of the table. */
function sampleArgs(spec: CommandSpec): string[] {
  const positionals = ['a.svs', 'cells.geojson'].slice(0, spec.positionals);
  const flags = spec.options.filter((o) => o.name !== 'help').flatMap((o) => (o.type === 'boolean' ? [`--${o.name}`] : [`--${o.name}`, '1']));
  return [...positionals, ...flags];
}

describe('cellbridge CLI: --help from the option tables', function () {
  this.timeout(120_000);

  for (const spec of COMMANDS) {
    it(`cellbridge ${spec.name} --help (and -h, and help ${spec.name}) exits 0 with the table it parses`, () => {
      for (const args of [[spec.name, '--help'], [spec.name, '-h'], ['help', spec.name], [spec.name, '--out', 'x', '--help']]) {
        const r = cellbridge(args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stdout, helpText(spec));
        assert.equal(r.stderr.trim(), '');
      }
      const help = helpText(spec);
      for (const o of spec.options) {
        assert.ok(help.includes(`--${o.name}`), `--${o.name} in the help`);
        if (o.env) assert.ok(help.includes(o.env), `${o.env} in the help`);
      }
      // The parser takes exactly the table's options: every one of them, and nothing else.
      assert.deepEqual(Object.keys(parseArgsOptions(spec)), spec.options.map((o) => o.name));
      const parsed = parseCommand(spec, sampleArgs(spec));
      assert.equal(parsed.help, false);
      if (!parsed.help) for (const o of spec.options.filter((x) => x.name !== 'help')) assert.notEqual(parsed.values[o.name], undefined, o.name);
    });

    it(`cellbridge ${spec.name} with an unknown option: exit 2, one clean line naming it and pointing at --help`, () => {
      const r = cellbridge([spec.name, '--no-such-option']);
      assert.equal(r.code, 2);
      const first = r.stderr.split('\n')[0];
      assert.equal(first, `cellbridge: unknown option --no-such-option for "cellbridge ${spec.name}"`);
      assert.match(r.stderr, new RegExp(`Run "cellbridge ${spec.name} --help" for all options`));
      assert.doesNotMatch(r.stderr, /-- "--/, 'no node-internal hint with an unbalanced quote');
    });
  }

  it('the top-level usage lists every command and says how to get its options', () => {
    const r = cellbridge(['--help']);
    assert.equal(r.code, 0);
    for (const spec of COMMANDS) assert.match(r.stdout, new RegExp(`cellbridge ${spec.name}\\b`));
    assert.match(r.stdout, /cellbridge COMMAND --help/);
  });

  it('serve: the limit flags of the table set the limits, with the table\'s defaults', () => {
    const limitFlags = SERVE.options.filter((o) => o.limit);
    assert.ok(limitFlags.length >= 15);
    for (const o of limitFlags) {
      const [key, min, , unit] = o.limit!;
      assert.equal(o.default, String(DEFAULT_LIMITS[key] / unit), `${o.name} default`);
      const c = parseServeArgs([`--${o.name}`, String(Math.max(min, 1))], {});
      assert.equal(c.limits[key], Math.max(min, 1) * unit, o.name);
    }
    assert.throws(() => parseServeArgs(['--max-clients', '0'], {}), UsageError);
    assert.equal(parseServeArgs([], {}).inferenceIsolation, undefined, 'the provider decides');
    assert.equal(parseServeArgs(['--inference-isolation', 'process'], {}).inferenceIsolation, 'process');
    assert.equal(parseServeArgs([], { CELLBRIDGE_INFERENCE_ISOLATION: 'thread' }).inferenceIsolation, 'thread');
    assert.throws(() => parseServeArgs(['--inference-isolation', 'fork'], {}), /--inference-isolation must be thread or process/);
    assert.deepEqual([...DEVICES], DEVICE_CHOICES);
  });

  it('docs/cli-reference.md is current (npm run docs:cli writes it)', () => {
    assert.equal(readFileSync(REFERENCE_PATH, 'utf8'), cliReference(), 'run `npm run build && npm run docs:cli` and commit docs/cli-reference.md');
    for (const spec of COMMANDS) for (const o of spec.options) assert.ok(cliReference().includes(`\`--${o.name}`), `${spec.name} --${o.name}`);
  });
});

describe('cellbridge overlay: scales, edges, legend', function () {
  this.timeout(120_000);
  let tmp: string;
  const W = 300, H = 200;
  const GREEN: [number, number, number] = [0, 200, 0], BLUE: [number, number, number] = [0, 90, 255];
  const square = (x: number, y: number, s: number, name: string, color: number[]) => ({
    type: 'Feature', geometry: { type: 'Polygon', coordinates: [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]] },
    properties: { objectType: 'cell', classification: { name, color } },
  });

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'cellbridge-overlay-'));
    await sharp({ create: { width: W, height: H, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toFile(join(tmp, 'image.png'));
    writeFileSync(join(tmp, 'cells.geojson'), JSON.stringify({ type: 'FeatureCollection', features: [
      square(100, 50, 20, 'Inflammatory', GREEN), square(150, 50, 20, 'Inflammatory', GREEN),
      square(285, 185, 14, 'Spindle', BLUE), // at the bottom-right corner
      square(10, 150, 10, 'Spindle', BLUE),
    ] }));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const run = (args: string[]) => {
    const r = cellbridge(['overlay', join(tmp, 'image.png'), join(tmp, 'cells.geojson'), '--out', join(tmp, 'out.png'), ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim());
  };
  const pixel = async (x: number, y: number) => {
    const { data, info } = await sharp(join(tmp, 'out.png')).raw().toBuffer({ resolveWithObject: true });
    const i = (Math.round(y) * info.width + Math.round(x)) * info.channels;
    return [data[i], data[i + 1], data[i + 2]];
  };

  for (const scale of [0.25, 0.3, 0.5, 1, 1.5, 2, 3.3, 4]) {
    it(`scale ${scale}: the picture is round(size × scale), with the legend band below it`, async () => {
      const s = run(['--scale', String(scale)]);
      const meta = await sharp(join(tmp, 'out.png')).metadata();
      const w = Math.round(W * scale), h = Math.round(H * scale);
      assert.equal(meta.height, h + 16 + 20 * 3, 'picture + legend (title and two classes)');
      assert.equal(meta.width, Math.max(w, meta.width!));
      assert.ok(meta.width! >= w);
      assert.deepEqual(s.counts, { Inflammatory: 2, Spindle: 2 });
      assert.equal(s.cells, 4);
      assert.deepEqual(s.region, [0, 0, W, H]);
      assert.equal(s.clipped, false);
      // The legend's first swatch is the most frequent class's colour (ties: by name).
      assert.deepEqual(await pixel(14, h + 8 + 20 + 10), GREEN);
      assert.deepEqual(await pixel(14, h + 8 + 40 + 10), BLUE);
      // The image itself is there, unmarked where no cell is.
      assert.deepEqual(await pixel(Math.floor(60 * scale), Math.floor(100 * scale)), [128, 128, 128]);
    });
  }

  it('draws each outline in its class colour where it lies (scale 4)', async () => {
    run(['--scale', '4', '--no-legend']);
    const meta = await sharp(join(tmp, 'out.png')).metadata();
    assert.deepEqual([meta.width, meta.height], [1200, 800]);
    // Left edge of the square at x = 100 → 400 in the picture; 2 px stroke.
    const onEdge = await pixel(400, 240), inside = await pixel(440, 240);
    assert.ok(onEdge[1] > 150 && onEdge[0] < 80, `green outline at the edge, got ${onEdge}`);
    assert.deepEqual(inside, [128, 128, 128], 'outlines only, no fill');
  });

  it('a region past the image edge is clipped to the image, and cells there are drawn', async () => {
    const s = run(['--region', '250,150,200,200', '--scale', '2']);
    assert.deepEqual(s.region, [250, 150, 50, 50]);
    assert.equal(s.clipped, true);
    assert.deepEqual(s.counts, { Spindle: 1 });
    const meta = await sharp(join(tmp, 'out.png')).metadata();
    assert.ok(meta.width! >= 100);
    assert.equal(meta.height, 100 + 16 + 20 * 2);
    const corner = run(['--region=-40,-40,100,100', '--scale', '1.5']);
    assert.deepEqual(corner.region, [0, 0, 60, 60]);
    assert.equal(corner.cells, 0);
  });

  it('writes JPEG when the name ends in .jpg', async () => {
    const r = cellbridge(['overlay', join(tmp, 'image.png'), join(tmp, 'cells.geojson'), '--out', join(tmp, 'out.jpg'), '--scale', '0.5']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await sharp(join(tmp, 'out.jpg')).metadata()).format, 'jpeg');
  });

  it('refuses a region wholly outside the image, and scales outside 0.25–4, with exit 2', () => {
    for (const [args, message] of [
      [['--region', '400,10,50,50'], /lies outside the image \(300x200 px\)/],
      [['--scale', '0.2'], /--scale must be a number from 0.25 to 4/],
      [['--scale', '5'], /--scale must be a number from 0.25 to 4/],
      [['--region', '1,2,3'], /--region must be four integers/],
    ] as const) {
      const r = cellbridge(['overlay', join(tmp, 'image.png'), join(tmp, 'cells.geojson'), '--out', join(tmp, 'bad.png'), ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
  });

  it('clipRegion: inside, across each edge, outside', () => {
    assert.deepEqual(clipRegion({ x: 10, y: 10, width: 5, height: 5 }, 100, 50), { x: 10, y: 10, width: 5, height: 5 });
    assert.deepEqual(clipRegion({ x: -5, y: 40, width: 200, height: 20 }, 100, 50), { x: 0, y: 40, width: 100, height: 10 });
    assert.equal(clipRegion({ x: 100, y: 0, width: 5, height: 5 }, 100, 50), null);
  });
});
