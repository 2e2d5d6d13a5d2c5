// A standing OpenFlow connection to the bridge's management socket, used only as a liveness
// signal: it drops the moment ovs-vswitchd dies, and connecting again succeeds the moment a new
// one is up. That tells the agent to replay within milliseconds instead of waiting for the
// periodic reconcile, and, while the same connection stays up, that the switch still holds what
// we installed (no per-sync flow count over the whole table). We speak just enough OpenFlow to
// stay connected: HELLO, and echo replies to the switch's echo requests.

import { connect, type Socket } from 'node:net';
import { join } from 'node:path';

import { realClock, type Clock, type TimerHandle } from './clock.js';

const OFPT_HELLO = 0;
const OFPT_ECHO_REQUEST = 2;
const OFPT_ECHO_REPLY = 3;
const OF15 = 0x06;

export interface SwitchEvents {
  /** the switch answered; `restart` is false only for the first connection of this process */
  onUp(restart: boolean): void;
  onDown(): void;
}

/** The management socket behind an ovs-ofctl switch argument, when it is a local one. */
export function mgmtSocketPath(target: string, env: NodeJS.ProcessEnv = process.env) {
  if (target.startsWith('unix:')) return target.slice('unix:'.length);
  if (/^[\w.-]+$/.test(target))
    return join(env.OVS_RUNDIR ?? '/var/run/openvswitch', `${target}.mgmt`);
  return undefined;
}

export class SwitchWatch {
  private sock?: Socket;
  private timer?: TimerHandle;
  private stopped = true;
  private everUp = false;
  /** connected and greeted: what we installed since then is still there */
  up = false;
  /** bumped on every new connection: a sync that saw another value must re-read the switch */
  generation = 0;

  constructor(
    private readonly path: string,
    private readonly events: SwitchEvents,
    private readonly opts: { clock?: Clock; retryMs?: number } = {},
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.dial();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.sock?.destroy();
    this.sock = undefined;
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = (this.opts.clock ?? realClock).setTimer(this.opts.retryMs ?? 100, () =>
      this.dial(),
    );
  }

  private dial(): void {
    if (this.stopped) return;
    const sock = connect({ path: this.path });
    this.sock = sock;
    let buf: Buffer = Buffer.alloc(0);
    sock.unref();
    sock.on('connect', () => sock.write(header(OF15, OFPT_HELLO, 8, 1)));
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 8) {
        const len = buf.readUInt16BE(2);
        if (len < 8) {
          sock.destroy();
          return;
        }
        if (buf.length < len) break;
        const msg = buf.subarray(0, len);
        buf = buf.subarray(len);
        const type = msg[1];
        if (type === OFPT_HELLO && !this.up) {
          this.up = true;
          this.generation++;
          const restart = this.everUp;
          this.everUp = true;
          this.events.onUp(restart);
        } else if (type === OFPT_ECHO_REQUEST) {
          const reply = Buffer.from(msg);
          reply[1] = OFPT_ECHO_REPLY;
          sock.write(reply);
        }
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (this.sock !== sock) return;
      this.sock = undefined;
      if (this.up) {
        this.up = false;
        this.events.onDown();
      }
      this.retry();
    });
  }
}

function header(version: number, type: number, length: number, xid: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = version;
  b[1] = type;
  b.writeUInt16BE(length, 2);
  b.writeUInt32BE(xid, 4);
  return b;
}
