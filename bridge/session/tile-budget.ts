/**
 * Tiles one connection may have asked for and not yet through post-processing, shared by its jobs
 * (limits.maxTilesInFlightPerClient): the cap on a client's queued work. A budget may have a parent
 * (the daemon-wide limits.maxTilesInFlightTotal): a tile is taken from both or from neither. A job
 * that finds the budget spent waits; freed tiles go to the waiting jobs in turn.
 */
export class TileBudget {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limit: number, private readonly parent?: TileBudget) {}

  get inUse(): number { return this.used; }

  /** Takes one tile of budget if there is one (here and in the parent). */
  take(): boolean {
    if (this.used >= this.limit) return false;
    if (this.parent && !this.parent.take()) return false;
    this.used++;
    return true;
  }

  release(n = 1): void {
    if (n <= 0) return;
    const freed = Math.min(n, this.used);
    this.used -= freed;
    this.parent?.release(freed);
    this.wakeWaiting();
  }

  /** Calls `wake` once when budget is freed (here or in the parent). */
  wait(wake: () => void): void {
    this.waiting.add(wake);
    this.parent?.wait(wake);
  }

  forget(wake: () => void): void {
    this.waiting.delete(wake);
    this.parent?.forget(wake);
  }

  private wakeWaiting(): void {
    for (const wake of [...this.waiting]) {
      if (this.used >= this.limit) break;
      this.forget(wake);
      wake();
    }
  }
}
