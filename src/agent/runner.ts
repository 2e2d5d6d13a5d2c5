// A sync loop with bounded frequency, in the spirit of kube-proxy's BoundedFrequencyRunner:
// requests made while a sync is pending or running coalesce into one; two syncs never start
// closer than minInterval; a full reconcile happens at least every maxInterval even when
// nothing asked for one; a failed sync is retried with capped exponential backoff.

import { Backoff, realClock, type BackoffOptions, type Clock, type TimerHandle } from './clock.js';

export interface SyncReason {
  /** true for the periodic reconcile (nothing was requested): re-read the installed state */
  periodic: boolean;
  /** true when retrying after a failed sync */
  retry: boolean;
}

export interface RunnerOptions {
  minIntervalMs: number;
  maxIntervalMs: number;
  retry: BackoffOptions;
  clock?: Clock;
  /** told about every failure and when the next attempt is due */
  onError?: (err: unknown, retryInMs: number) => void;
}

export class BoundedFrequencyRunner {
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private timer?: TimerHandle;
  private lastStart = -Infinity;
  private retryAt?: number;
  private pending = false;
  private retrying = false;
  private running?: Promise<void>;
  private stopped = true;
  /** syncs started so far (for tests and metrics) */
  runs = 0;

  constructor(
    private readonly fn: (reason: SyncReason) => Promise<void>,
    private readonly opts: RunnerOptions,
  ) {
    if (opts.minIntervalMs < 0 || opts.maxIntervalMs < opts.minIntervalMs)
      throw new Error('runner: need 0 <= minInterval <= maxInterval');
    this.clock = opts.clock ?? realClock;
    this.backoff = new Backoff(opts.retry);
  }

  /** Start the loop with an immediate first sync. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.pending = true;
    this.arm();
  }

  /**
   * Ask for a sync; it runs as soon as minInterval (and any retry backoff) allows. `now`: the
   * cause of earlier failures is known to be gone (the switch came back), skip the backoff.
   */
  request(opts: { now?: boolean } = {}): void {
    this.pending = true;
    if (opts.now) this.retryAt = undefined;
    this.arm();
  }

  /** Stop scheduling; resolves once a sync in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.running;
  }

  /** Resolves when no sync is running (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  private arm(): void {
    if (this.stopped || this.running) return;
    const at = this.pending
      ? Math.max(this.lastStart + this.opts.minIntervalMs, this.retryAt ?? -Infinity)
      : this.lastStart + this.opts.maxIntervalMs;
    this.timer?.cancel();
    this.timer = this.clock.setTimer(Math.max(0, at - this.clock.now()), () => this.fire());
  }

  private fire(): void {
    this.timer = undefined;
    if (this.stopped || this.running) return;
    const reason: SyncReason = { periodic: !this.pending, retry: this.retrying };
    this.pending = false;
    this.lastStart = this.clock.now();
    this.runs++;
    this.running = this.fn(reason).then(
      () => {
        this.backoff.reset();
        this.retryAt = undefined;
        this.retrying = false;
      },
      (err: unknown) => {
        const delay = this.backoff.next();
        this.retryAt = this.clock.now() + delay;
        this.retrying = true;
        this.pending = true;
        try {
          this.opts.onError?.(err, delay);
        } catch {
          // a broken error hook must not stop the loop
        }
      },
    );
    void this.running.finally(() => {
      this.running = undefined;
      this.arm();
    });
  }
}
