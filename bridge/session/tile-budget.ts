/**
 * Tiles one connection may have asked for and not yet through inference, shared by its jobs
 * (limits.maxTilesInFlightPerClient): the cap on a client's queued work. A job that finds the budget
 * spent waits; freed tiles go to the waiting jobs in turn.
 */
export class TileBudget {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limit: number) {}

  get inUse(): number { return this.used; }

  /** Takes one tile of budget if there is one. */
  take(): boolean {
    if (this.used >= this.limit) return false;
    this.used++;
    return true;
  }

  release(n = 1): void {
    this.used = Math.max(0, this.used - n);
    for (const wake of [...this.waiting]) {
      if (this.used >= this.limit) break;
      this.waiting.delete(wake);
      wake();
    }
  }

  /** Calls `wake` once when budget is freed. */
  wait(wake: () => void): void { this.waiting.add(wake); }

  forget(wake: () => void): void { this.waiting.delete(wake); }
}
