// FakeClock: a hand-driven Clock for tests; timers fire only inside advance().
import type { Clock, TimerHandle } from '../../src/agent/clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

export class FakeClock implements Clock {
  private t = 1_000_000;
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }

  /** Pending timers, soonest first (diagnostics). */
  pending(): number[] {
    return this.timers
      .filter((t) => t.live)
      .map((t) => t.at - this.t)
      .sort((a, b) => a - b);
  }

  /** Move time forward, firing due timers in order; settles promises between timers. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers
        .filter((t) => t.live && t.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      due.live = false;
      this.timers = this.timers.filter((t) => t.live);
      due.fn();
    }
    this.t = end;
    await settle();
  }
}

/** Let queued promise callbacks and I/O callbacks run (no wall-clock dependence). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
