// Time as a dependency: the agent's timers (sync intervals, backoff, relists, staleness) all go
// through a Clock so tests can drive them by hand instead of waiting.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    // timers never keep the process alive on their own: servers and watches do
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** 0..1: the delay is scaled by a random factor in [1 - jitter, 1] */
  jitter?: number;
  random?: () => number;
}

/** Capped exponential backoff with jitter: 1x, 2x, 4x … up to maxMs; reset after a success. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}

  next(): number {
    const base = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const jitter = this.opts.jitter ?? 0.2;
    const r = (this.opts.random ?? Math.random)();
    return Math.round(base * (1 - jitter * r));
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}
