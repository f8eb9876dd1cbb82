/** Per-instance class vote and mean class probabilities. */

export interface ClassVotes {
  /** Indexed by label (length n+1): voted channel, 0 = background vote (instance to be dropped). */
  classIndex: Int32Array;
  /** (n+1)*C: pixels per label and argmax channel. */
  counts: Int32Array;
  /** (n+1)*C: mean probability per label and channel (softmax of logits; raw when already probabilities). */
  meanProbabilities: Float32Array;
  /** Pixels per label (length n+1). */
  area: Int32Array;
}

/**
 * Majority vote of argmax(type) over each instance's pixels (contract step 5): argmax ties and vote
 * ties go to the lower channel; when background wins and another class is present, the most frequent
 * other class wins (the runner-up); an instance whose pixels are all background-argmax votes 0.
 * `typeLogits` is C*H*W channel-major, `labels` holds 0..n. `withProbabilities` false skips the
 * mean probabilities (left 0; classIndex, counts and area do not depend on them).
 */
export function voteClasses(
  labels: Int32Array,
  n: number,
  typeLogits: Float32Array,
  C: number,
  kind: 'logits' | 'probabilities',
  withProbabilities = true,
): ClassVotes {
  const N = labels.length;
  const counts = new Int32Array((n + 1) * C);
  const sums = new Float64Array((n + 1) * C);
  const area = new Int32Array(n + 1);
  const p = new Float64Array(C);
  const softmax = kind === 'logits';
  for (let i = 0; i < N; i++) {
    const l = labels[i];
    if (l === 0) continue;
    area[l]++;
    let best = typeLogits[i];
    let arg = 0;
    for (let c = 1; c < C; c++) {
      const v = typeLogits[c * N + i];
      if (v > best) { best = v; arg = c; }
    }
    counts[l * C + arg]++;
    const o = l * C;
    if (!withProbabilities) continue;
    if (softmax) {
      // Subtracting the max keeps exp() finite for large logits.
      let z = 0;
      for (let c = 0; c < C; c++) { const e = Math.exp(typeLogits[c * N + i] - best); p[c] = e; z += e; }
      for (let c = 0; c < C; c++) sums[o + c] += p[c] / z;
    } else {
      for (let c = 0; c < C; c++) sums[o + c] += typeLogits[c * N + i];
    }
  }
  const classIndex = new Int32Array(n + 1);
  const meanProbabilities = new Float32Array((n + 1) * C);
  for (let l = 1; l <= n; l++) {
    const o = l * C;
    if (area[l] > 0) for (let c = 0; c < C; c++) meanProbabilities[o + c] = sums[o + c] / area[l];
    // Best non-background class (strictly greater keeps the lower index on ties).
    let fgBest = 0;
    let fgCount = 0;
    for (let c = 1; c < C; c++) if (counts[o + c] > fgCount) { fgCount = counts[o + c]; fgBest = c; }
    // Background wins only when nothing else is present; otherwise the runner-up (or the winner) is
    // the most frequent foreground class either way.
    classIndex[l] = fgCount > 0 ? fgBest : 0;
  }
  return { classIndex, counts, meanProbabilities, area };
}

/** Zeroes pixels of instances voted background; returns how many instances were dropped. No renumbering. */
export function dropBackgroundVoted(labels: Int32Array, classIndex: Int32Array): number {
  let any = false;
  for (let l = 1; l < classIndex.length; l++) if (classIndex[l] === 0) { any = true; break; }
  if (!any) return 0;
  // Labels absent from the map also vote 0; count only those that had pixels.
  const seen = new Uint8Array(classIndex.length);
  let dropped = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l !== 0 && classIndex[l] === 0) {
      labels[i] = 0;
      if (!seen[l]) { seen[l] = 1; dropped++; }
    }
  }
  return dropped;
}
