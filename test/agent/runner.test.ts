// The bounded-frequency sync loop, driven by a FakeClock: no test here waits on real time.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff } from '../../src/agent/clock.js';
import { BoundedFrequencyRunner, type SyncReason } from '../../src/agent/runner.js';
import { FakeClock } from './fake-clock.js';

function setup(fail: () => boolean = () => false) {
  const clock = new FakeClock();
  const calls: { at: number; reason: SyncReason }[] = [];
  const errors: number[] = [];
  const runner = new BoundedFrequencyRunner(
    async (reason) => {
      calls.push({ at: clock.now(), reason });
      if (fail()) throw new Error('boom');
    },
    {
      minIntervalMs: 1000,
      maxIntervalMs: 60_000,
      retry: { initialMs: 500, maxMs: 8000, jitter: 0 },
      clock,
      onError: (_e, ms) => errors.push(ms),
    },
  );
  return { clock, calls, errors, runner, t0: clock.now() };
}

test('first sync runs at once; a burst of requests coalesces into one sync after minInterval', async () => {
  const { clock, calls, runner, t0 } = setup();
  runner.start();
  await clock.advance(0);
  assert.equal(calls.length, 1);
  for (let i = 0; i < 50; i++) runner.request();
  await clock.advance(999);
  assert.equal(calls.length, 1);
  await clock.advance(1);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].at - t0, 1000);
  assert.equal(calls[1].reason.periodic, false);
  await runner.stop();
});

test('with nothing requested, a periodic full sync runs every maxInterval', async () => {
  const { clock, calls, runner } = setup();
  runner.start();
  await clock.advance(0);
  await clock.advance(60_000);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].reason.periodic, true);
  await clock.advance(60_000);
  assert.equal(calls.length, 3);
  await runner.stop();
});

test('a request made during a sync runs once after it, not concurrently', async () => {
  const clock = new FakeClock();
  let release!: () => void;
  let running = 0;
  let maxRunning = 0;
  let n = 0;
  const runner = new BoundedFrequencyRunner(
    async () => {
      n++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      if (n === 1) await new Promise<void>((r) => (release = r));
      running--;
    },
    { minIntervalMs: 100, maxIntervalMs: 10_000, retry: { initialMs: 10, maxMs: 10 }, clock },
  );
  runner.start();
  await clock.advance(0);
  runner.request();
  runner.request();
  await clock.advance(500);
  assert.equal(n, 1);
  release();
  await runner.idle();
  await clock.advance(0);
  assert.equal(n, 2);
  assert.equal(maxRunning, 1);
  await runner.stop();
});

test('failures retry with capped exponential backoff, then the loop recovers', async () => {
  let failures = 4;
  const { clock, calls, errors, runner } = setup(() => failures-- > 0);
  runner.start();
  await clock.advance(0);
  // retry delays: 500, 1000, 2000, 4000 — but never sooner than minInterval (1000)
  await clock.advance(20_000);
  assert.deepEqual(errors, [500, 1000, 2000, 4000]);
  const gaps = calls.slice(1, 5).map((c, i) => c.at - calls[i].at);
  assert.deepEqual(gaps, [1000, 1000, 2000, 4000]);
  assert.equal(calls[1].reason.retry, true);
  assert.equal(calls.length, 5);
  // after the success the next sync is the periodic one again
  await clock.advance(60_000);
  assert.equal(calls.length, 6);
  assert.equal(calls[5].reason.retry, false);
  await runner.stop();
});

test('stop() cancels timers: nothing runs afterwards', async () => {
  const { clock, calls, runner } = setup();
  runner.start();
  await clock.advance(0);
  await runner.stop();
  runner.request();
  await clock.advance(120_000);
  assert.equal(calls.length, 1);
});

test('backoff: doubles up to the cap, jitter only shortens', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, random: () => 1 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [50, 100, 200, 400, 500]);
  b.reset();
  assert.equal(b.next(), 50);
});
