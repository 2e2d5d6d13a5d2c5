// A small who-am-I server for lab traffic. TCP: the client's first line is a command,
// `WHO` (one JSON line back) or `BULK n` (exactly n pattern bytes, then close). UDP: every
// datagram gets one JSON datagram back. Run as a program it prints READY once listening.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { pathToFileURL } from 'node:url';

export interface WhoReply {
  server: string;
  /** the client as the server sees it, "ip:port" */
  peer: string;
  /** the address the client reached, "ip:port" */
  local: string;
}

export interface EchoServerOptions {
  name: string;
  tcpPorts: number[];
  udpPorts: number[];
}

export interface EchoServer {
  close(): Promise<void>;
}

/** Byte i of a BULK reply; a period of 251 (prime) catches dropped or repeated segments. */
export function bulkByte(i: number): number {
  return (i % 251) & 0xff;
}

const MAX_BULK = 256 * 1024 * 1024;
const CHUNK = 64 * 1024;

function sendBulk(sock: Socket, total: number): void {
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      const n = Math.min(CHUNK, total - sent);
      const buf = Buffer.allocUnsafe(n);
      for (let j = 0; j < n; j++) buf[j] = bulkByte(sent + j);
      sent += n;
      if (!sock.write(buf)) {
        sock.once('drain', pump);
        return;
      }
    }
    sock.end();
  };
  pump();
}

function handleTcp(name: string, sock: Socket): void {
  let line = '';
  sock.setTimeout(30_000, () => sock.destroy());
  sock.on('error', () => sock.destroy());
  const onData = (chunk: Buffer) => {
    line += chunk.toString('latin1');
    const nl = line.indexOf('\n');
    if (nl < 0) {
      if (line.length > 256) sock.destroy();
      return;
    }
    sock.off('data', onData);
    const [cmd, arg] = line.slice(0, nl).trim().split(/\s+/);
    if (cmd === 'WHO') {
      const reply: WhoReply = {
        server: name,
        peer: `${sock.remoteAddress}:${sock.remotePort}`,
        local: `${sock.localAddress}:${sock.localPort}`,
      };
      sock.end(JSON.stringify(reply) + '\n');
    } else if (cmd === 'BULK' && /^\d+$/.test(arg ?? '') && Number(arg) <= MAX_BULK) {
      sendBulk(sock, Number(arg));
    } else {
      sock.end('ERR\n');
    }
  };
  sock.on('data', onData);
}

function localIPv4s(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') out.push(a.address);
  }
  return out;
}

export async function startEchoServer(opts: EchoServerOptions): Promise<EchoServer> {
  const tcp: Server[] = [];
  const udp: UdpSocket[] = [];
  for (const port of opts.tcpPorts) {
    const srv = createServer((s) => handleTcp(opts.name, s));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '0.0.0.0', () => resolve());
    });
    tcp.push(srv);
  }
  // UDP binds each local address separately: a wildcard socket cannot tell which address a
  // datagram was sent to, and replies from the exact address keep the who-am-I answer honest.
  const addrs = localIPv4s();
  for (const port of opts.udpPorts) {
    for (const addr of addrs.length ? addrs : ['0.0.0.0']) {
      const s = createSocket('udp4');
      s.on('message', (_msg, rinfo) => {
        const reply: WhoReply = {
          server: opts.name,
          peer: `${rinfo.address}:${rinfo.port}`,
          local: `${addr}:${port}`,
        };
        s.send(JSON.stringify(reply), rinfo.port, rinfo.address);
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(port, addr, () => resolve());
      });
      udp.push(s);
    }
  }
  return {
    close: async () => {
      await Promise.all(tcp.map((s) => new Promise((r) => s.close(() => r(undefined)))));
      await Promise.all(udp.map((s) => new Promise((r) => s.close(() => r(undefined)))));
    },
  };
}

function parsePorts(v: string | undefined): number[] {
  if (!v) return [];
  return v.split(',').map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`bad port ${p}`);
    return n;
  });
}

/** `echo-server.ts --name NAME --tcp 80,8080 --udp 53` */
export function parseEchoArgs(argv: string[]): EchoServerOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    name: get('--name') ?? 'echo',
    tcpPorts: parsePorts(get('--tcp')),
    udpPorts: parsePorts(get('--udp')),
  };
}

export function echoServerArgs(opts: EchoServerOptions): string[] {
  const args = ['--name', opts.name];
  if (opts.tcpPorts.length) args.push('--tcp', opts.tcpPorts.join(','));
  if (opts.udpPorts.length) args.push('--udp', opts.udpPorts.join(','));
  return args;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseEchoArgs(process.argv.slice(2));
  startEchoServer(opts).then(
    () => {
      // The parent stops reading stdout after this line; SIGTERM's default action stops us.
      process.stdout.write('READY\n');
    },
    (err: Error) => {
      process.stderr.write(`echo-server: ${err.message}\n`);
      process.exit(1);
    },
  );
}
