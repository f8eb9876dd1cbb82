/** The early-exit self-intersection test gives turf's `kinks` answer (issue #11 replaced kinks: O(n²) memory). */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { kinks, polygon } from '@turf/turf';
import { findSelfIntersection } from '../bridge/tiling/self-intersection';
import { zigzag } from './helpers/attacks';

const closed = (r: Float64Array) => {
  const c: number[][] = [];
  for (let i = 0; i < r.length; i += 2) c.push([r[i], r[i + 1]]);
  c.push([r[0], r[1]]);
  return c;
};

/** Rings of distinct consecutive points (as parseRoi makes them), on a small grid: many touching and collinear cases. */
const ring = fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 })), { minLength: 3, maxLength: 9 })
  .map((pts) => pts.filter((p, i) => i === 0 || p[0] !== pts[i - 1][0] || p[1] !== pts[i - 1][1]))
  .filter((pts) => pts.length >= 3 && (pts[0][0] !== pts[pts.length - 1][0] || pts[0][1] !== pts[pts.length - 1][1]))
  .map((pts) => Float64Array.from(pts.flat()));

describe('self-intersection test', function () {
  it('agrees with turf kinks on 3,000 random polygons with holes (touching, collinear and crossing edges)', () => {
    fc.assert(fc.property(fc.array(ring, { minLength: 1, maxLength: 3 }), (rings) => {
      const turf = kinks(polygon(rings.map(closed))).features.length > 0;
      assert.equal(findSelfIntersection(rings) !== null, turf);
    }), { numRuns: 3000, seed: 11 });
  });

  it('finds the crossing of a 100,000-vertex star at once and passes a 100,000-vertex circle (turf: minutes)', () => {
    const star = Float64Array.from(zigzag(100_000, 10_000).slice(0, -1).flat());
    let t = performance.now();
    assert.ok(findSelfIntersection([star]));
    assert.ok(performance.now() - t < 2000);
    const n = 100_000;
    const circle = Float64Array.from(Array.from({ length: n }, (_, i) => [5000 + 4000 * Math.cos((2 * Math.PI * i) / n), 5000 + 4000 * Math.sin((2 * Math.PI * i) / n)]).flat());
    t = performance.now();
    assert.equal(findSelfIntersection([circle]), null);
    assert.ok(performance.now() - t < 5000, `${performance.now() - t} ms`);
  });
});
