// Client side of the echo server, every step bounded by a timeout. Run as a program (inside a
// namespace) it takes a JSON array of probes as its argument and prints a JSON array of results.

import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

import { bulkByte, type WhoReply } from './echo-server.js';

export type ProbeSpec =
  | { kind: 'tcp-who'; host: string; port: number; timeoutMs?: number }
  | { kind: 'tcp-bulk'; host: string; port: number; bytes: number; timeoutMs?: number }
  | {
      kind: 'udp-who';
      host: string;
      port: number;
      timeoutMs?: number;
      /** how long to keep listening after the first reply, to catch duplicates */
      windowMs?: number;
    };

export interface ProbeResult {
  spec: ProbeSpec;
  ok: boolean;
  error?: string;
  who?: WhoReply;
  /** tcp-bulk: bytes received and whether every byte matched the pattern */
  bytes?: number;
  patternOk?: boolean;
  /** udp-who: every reply received within the window (more than one is a duplicate) */
  replies?: WhoReply[];
  /** where the answers came from, "ip:port": the TCP peer, or each UDP reply's source */
  from?: string[];
  ms: number;
}

const DEFAULT_TIMEOUT_MS = 3000;

function tcpExchange(
  host: string,
  port: number,
  command: string,
  timeoutMs: number,
  onData: (chunk: Buffer) => void,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let remote = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => {
      remote = `${sock.remoteAddress}:${sock.remotePort}`;
      sock.write(command + '\n');
    });
    sock.on('data', onData);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(remote);
    });
  });
}

/** One TCP `WHO` exchange: the server's answer and the address the reply came from. */
export async function tcpWho(host: string, port: number, timeoutMs: number) {
  let text = '';
  const remote = await tcpExchange(
    host,
    port,
    'WHO',
    timeoutMs,
    (b) => (text += b.toString('utf8')),
  );
  return { who: JSON.parse(text.trim()) as WhoReply, remote };
}

async function tcpBulk(host: string, port: number, bytes: number, timeoutMs: number) {
  let received = 0;
  let patternOk = true;
  await tcpExchange(host, port, `BULK ${bytes}`, timeoutMs, (b) => {
    if (patternOk) {
      for (let j = 0; j < b.length; j++) {
        if (b[j] !== bulkByte(received + j)) {
          patternOk = false;
          break;
        }
      }
    }
    received += b.length;
  });
  return { received, patternOk };
}

function udpWho(host: string, port: number, timeoutMs: number, windowMs: number) {
  return new Promise<{ replies: WhoReply[]; from: string[] }>((resolve, reject) => {
    const s = createSocket('udp4');
    const replies: WhoReply[] = [];
    const from: string[] = [];
    let windowTimer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      clearTimeout(timer);
      clearTimeout(windowTimer);
      s.close();
      if (err) reject(err);
      else resolve({ replies, from });
    };
    const timer = setTimeout(
      () => finish(new Error(`no UDP reply within ${timeoutMs} ms`)),
      timeoutMs,
    );
    s.on('error', (e) => finish(e));
    s.on('message', (msg, rinfo) => {
      from.push(`${rinfo.address}:${rinfo.port}`);
      try {
        replies.push(JSON.parse(msg.toString('utf8')) as WhoReply);
      } catch {
        replies.push({ server: '?', peer: '?', local: msg.toString('utf8') });
      }
      if (replies.length === 1) {
        clearTimeout(timer);
        windowTimer = setTimeout(() => finish(), windowMs);
      }
    });
    s.send('WHO', port, host);
  });
}

export async function probe(spec: ProbeSpec): Promise<ProbeResult> {
  const t0 = Date.now();
  const timeoutMs = spec.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    switch (spec.kind) {
      case 'tcp-who': {
        const { who, remote } = await tcpWho(spec.host, spec.port, timeoutMs);
        return { spec, ok: true, who, from: [remote], ms: Date.now() - t0 };
      }
      case 'tcp-bulk': {
        const { received, patternOk } = await tcpBulk(spec.host, spec.port, spec.bytes, timeoutMs);
        const ok = received === spec.bytes && patternOk;
        return {
          spec,
          ok,
          bytes: received,
          patternOk,
          ms: Date.now() - t0,
          ...(ok ? {} : { error: `got ${received}/${spec.bytes} bytes, pattern ok: ${patternOk}` }),
        };
      }
      case 'udp-who': {
        const { replies, from } = await udpWho(
          spec.host,
          spec.port,
          timeoutMs,
          spec.windowMs ?? 300,
        );
        const ok = replies.length === 1;
        return {
          spec,
          ok,
          who: replies[0],
          replies,
          from,
          ms: Date.now() - t0,
          ...(ok ? {} : { error: `${replies.length} UDP replies (duplicates)` }),
        };
      }
    }
  } catch (e) {
    return { spec, ok: false, error: (e as Error).message, ms: Date.now() - t0 };
  }
}

/** Run the probes, at most `concurrency` at a time; results keep the order of `specs`. */
export async function probeAll(specs: ProbeSpec[], concurrency = 1): Promise<ProbeResult[]> {
  const out: ProbeResult[] = new Array(specs.length);
  let next = 0;
  const worker = async () => {
    while (next < specs.length) {
      const i = next++;
      out[i] = await probe(specs[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const specs = JSON.parse(process.argv[2] ?? '[]') as ProbeSpec[];
  probeAll(specs, Number(process.argv[3] ?? 1)).then(
    (results) => process.stdout.write(JSON.stringify(results) + '\n'),
    (err: Error) => {
      process.stderr.write(`probe: ${err.message}\n`);
      process.exit(1);
    },
  );
}
