// New-connection rate against an echo server: each connection is connect, one `WHO` line, the
// JSON answer, close. A fixed number of connections stay in flight; the run stops after `count`
// connections or `durationMs`, whichever comes first. Run as a program (inside a namespace) it
// takes one JSON ConnRateSpec argument and prints one JSON ConnRateResult line.

import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

import type { WhoReply } from './echo-server.js';

export interface ConnRateSpec {
  host: string;
  port: number;
  /** connections to complete (upper bound) */
  count: number;
  /** stop starting new connections after this long */
  durationMs: number;
  /** connections in flight at once */
  concurrency: number;
  /** unmeasured connections first, so JIT and ARP/conntrack warm-up stay out of the number */
  warmup?: number;
  /** per-connection bound */
  timeoutMs?: number;
  /** the server that must answer (WhoReply.server); others count as errors */
  expectServer?: string;
}

export interface ConnRateResult {
  spec: ConnRateSpec;
  completed: number;
  errors: number;
  /** first few distinct error messages */
  errorSamples: string[];
  elapsedMs: number;
  perSecond: number;
  /** connect → close latency of completed connections, ms */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** answers per server name */
  servers: Record<string, number>;
}

/** One connection; resolves with the answer or rejects, never outlives `timeoutMs`. */
export function whoOnce(host: string, port: number, timeoutMs: number): Promise<WhoReply> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, noDelay: true });
    let text = '';
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) return reject(err);
      try {
        resolve(JSON.parse(text.trim()) as WhoReply);
      } catch {
        reject(new Error(`bad answer ${JSON.stringify(text.slice(0, 80))}`));
      }
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write('WHO\n'));
    sock.on('data', (b: Buffer) => (text += b.toString('utf8')));
    sock.on('error', (e) => finish(e));
    // the server ends after its line: our side closes too, as a short-lived client does
    sock.on('end', () => finish());
  });
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export async function measureConnRate(spec: ConnRateSpec): Promise<ConnRateResult> {
  const timeoutMs = spec.timeoutMs ?? 3000;
  const concurrency = Math.max(1, spec.concurrency);
  for (let i = 0; i < (spec.warmup ?? 0); i++) {
    await whoOnce(spec.host, spec.port, timeoutMs).catch(() => undefined);
  }

  const latencies: number[] = [];
  const servers: Record<string, number> = {};
  const errorSamples = new Set<string>();
  let errors = 0;
  let started = 0;
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + spec.durationMs;
  const worker = async () => {
    while (started < spec.count && Date.now() < deadline) {
      started++;
      const s = process.hrtime.bigint();
      try {
        const who = await whoOnce(spec.host, spec.port, timeoutMs);
        servers[who.server] = (servers[who.server] ?? 0) + 1;
        if (spec.expectServer && who.server !== spec.expectServer) {
          errors++;
          errorSamples.add(`answered by ${who.server}`);
        } else {
          latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
        }
      } catch (e) {
        errors++;
        if (errorSamples.size < 5) errorSamples.add((e as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  latencies.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    spec,
    completed: latencies.length,
    errors,
    errorSamples: [...errorSamples],
    elapsedMs: round(elapsedMs),
    perSecond: round((latencies.length * 1000) / elapsedMs),
    latencyMs: {
      p50: round(quantile(latencies, 0.5)),
      p90: round(quantile(latencies, 0.9)),
      p99: round(quantile(latencies, 0.99)),
      max: round(latencies.at(-1) ?? 0),
    },
    servers,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ConnRateSpec;
  measureConnRate(spec).then(
    (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    (err: Error) => {
      process.stderr.write(`connrate: ${err.message}\n`);
      process.exit(1);
    },
  );
}
