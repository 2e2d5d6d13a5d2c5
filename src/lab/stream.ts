// Long-lived lab traffic, for watching connections survive changes. Three modes, each a program
// run inside a namespace that prints JSON lines on stdout:
//   serve  --name N --port P          one greeting line per connection, then echoes every byte
//   client --host H --port P …        paced pattern bytes out, checks the echo, reports progress
//   dial   --host H --port P …        a fresh WHO connection every few ms, one line per attempt
// Clients run until their stdin closes (the parent's way to say stop) or --max-ms passes.

import { createServer, connect, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

import { bulkByte } from './echo-server.js';
import { tcpWho } from './probe.js';

export interface StreamHello {
  type: 'hello';
  server: string;
  peer: string;
  t: number;
}

export interface StreamProgress {
  type: 'progress' | 'end';
  t: number;
  sent: number;
  echoed: number;
  /** every echoed byte matched what was sent at that offset */
  patternOk: boolean;
  /** longest wait between two echoed chunks while data was outstanding */
  maxGapMs: number;
  error?: string;
}

export interface DialResult {
  type: 'dial';
  /** wall-clock time the attempt started */
  t: number;
  ok: boolean;
  server?: string;
  ms: number;
  error?: string;
}

export type StreamLine = StreamHello | StreamProgress | DialResult | { type: 'ready' };

const emit = (line: StreamLine) => process.stdout.write(JSON.stringify(line) + '\n');

function serve(name: string, port: number): void {
  const srv = createServer((sock: Socket) => {
    sock.on('error', () => sock.destroy());
    const hello = { server: name, peer: `${sock.remoteAddress}:${sock.remotePort}` };
    sock.write(JSON.stringify(hello) + '\n');
    sock.pipe(sock);
  });
  srv.listen(port, '0.0.0.0', () => emit({ type: 'ready' }));
}

interface ClientOptions {
  host: string;
  port: number;
  chunk: number;
  intervalMs: number;
  maxMs: number;
}

function client(o: ClientOptions): void {
  const sock = connect({ host: o.host, port: o.port });
  let sent = 0;
  let echoed = 0;
  let patternOk = true;
  let maxGapMs = 0;
  let lastEcho = Date.now();
  let greeting = '';
  let greeted = false;
  let finished = false;
  let pump: NodeJS.Timeout | undefined;
  let report: NodeJS.Timeout | undefined;
  const snapshot = (type: 'progress' | 'end', error?: string): StreamProgress => ({
    type,
    t: Date.now(),
    sent,
    echoed,
    patternOk,
    maxGapMs,
    ...(error ? { error } : {}),
  });
  const finish = (error?: string) => {
    if (finished) return;
    finished = true;
    clearInterval(pump);
    clearInterval(report);
    clearTimeout(hard);
    emit(snapshot('end', error ?? (echoed === sent ? undefined : `${sent - echoed} bytes lost`)));
    sock.destroy();
    process.exit(0);
  };
  const hard = setTimeout(() => finish(`still running after ${o.maxMs} ms`), o.maxMs);
  // stop sending, then give the echo a bounded time to catch up
  const drain = () => {
    clearInterval(pump);
    const end = Date.now() + 10_000;
    const check = setInterval(() => {
      if (echoed >= sent || Date.now() > end) {
        clearInterval(check);
        finish();
      }
    }, 20);
  };
  sock.on('connect', () => {
    pump = setInterval(() => {
      const buf = Buffer.allocUnsafe(o.chunk);
      for (let j = 0; j < o.chunk; j++) buf[j] = bulkByte(sent + j);
      if (echoed === sent) lastEcho = Date.now();
      sent += o.chunk;
      sock.write(buf);
    }, o.intervalMs);
    report = setInterval(() => emit(snapshot('progress')), 500);
  });
  sock.on('data', (b: Buffer) => {
    let data = b;
    if (!greeted) {
      greeting += b.toString('latin1');
      const nl = greeting.indexOf('\n');
      if (nl < 0) return;
      const hello = JSON.parse(greeting.slice(0, nl)) as { server: string; peer: string };
      emit({ type: 'hello', ...hello, t: Date.now() });
      greeted = true;
      data = Buffer.from(greeting.slice(nl + 1), 'latin1');
    }
    const now = Date.now();
    if (data.length) {
      maxGapMs = Math.max(maxGapMs, now - lastEcho);
      lastEcho = now;
    }
    for (let j = 0; j < data.length && patternOk; j++)
      if (data[j] !== bulkByte(echoed + j)) patternOk = false;
    echoed += data.length;
  });
  sock.on('error', (e) => finish(e.message));
  sock.on('close', () => finish('connection closed by the other side'));
  process.stdin.on('end', drain);
  process.stdin.on('close', drain);
  process.stdin.resume();
}

async function dial(host: string, port: number, everyMs: number, timeoutMs: number, maxMs: number) {
  let stop = false;
  process.stdin.on('end', () => (stop = true));
  process.stdin.on('close', () => (stop = true));
  process.stdin.resume();
  const end = Date.now() + maxMs;
  emit({ type: 'ready' });
  while (!stop && Date.now() < end) {
    const t = Date.now();
    try {
      const { who } = await tcpWho(host, port, timeoutMs);
      emit({ type: 'dial', t, ok: true, server: who.server, ms: Date.now() - t });
    } catch (e) {
      emit({ type: 'dial', t, ok: false, ms: Date.now() - t, error: (e as Error).message });
    }
    const wait = t + everyMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  process.exit(0);
}

/** argv for each mode (after the program path). */
export function streamArgs(
  mode: 'serve' | 'client' | 'dial',
  opts: Record<string, string | number>,
): string[] {
  return [mode, ...Object.entries(opts).flatMap(([k, v]) => [`--${k}`, String(v)])];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [mode, ...rest] = process.argv.slice(2);
  const get = (flag: string, def?: string): string => {
    const i = rest.indexOf(`--${flag}`);
    const v = i >= 0 ? rest[i + 1] : def;
    if (v === undefined) throw new Error(`stream ${mode}: --${flag} is required`);
    return v;
  };
  const num = (flag: string, def?: number) => Number(get(flag, def?.toString()));
  if (mode === 'serve') serve(get('name'), num('port'));
  else if (mode === 'client')
    client({
      host: get('host'),
      port: num('port'),
      chunk: num('chunk', 1024),
      intervalMs: num('interval-ms', 20),
      maxMs: num('max-ms', 600_000),
    });
  else if (mode === 'dial')
    void dial(
      get('host'),
      num('port'),
      num('every-ms', 100),
      num('timeout-ms', 500),
      num('max-ms', 600_000),
    );
  else {
    process.stderr.write('usage: stream.ts serve|client|dial …\n');
    process.exit(2);
  }
}
