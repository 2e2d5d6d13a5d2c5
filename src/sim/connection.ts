// One connection through the cluster simulator: the client sends, whichever place received the
// request answers from there, and every packet is one journey. Used by trace and verify.
import type { ClusterSim } from './cluster.js';
import type { SimOptions } from './interpreter.js';
import { placeKey, type Journey, type Place, type SendOptions } from './network.js';
import { type Packet, replyTo, tcpPacket, udpPacket } from './packet.js';

export interface Destination {
  ip: string;
  port: number;
  protocol: 'TCP' | 'UDP';
}

export interface ConnStep {
  index: number;
  direction: 'request' | 'reply';
  /** TCP flags in tcpdump letters; empty for UDP */
  flags: string;
  from: Place;
  sent: Packet;
  journey: Journey;
}

export interface ConnectionResult {
  client: Place;
  /** what the client's first packet looked like when it left */
  request: Packet;
  steps: ConnStep[];
  /** the place the first request reached (when exactly one did) */
  server?: Place;
  /** that request as the server received it */
  serverSaw?: Packet;
  /** the connection stopped early: which step and why */
  stopped?: string;
}

// Who sends, and with which TCP flags: handshake, one data segment each way, FIN/ACK close.
const TCP_SEQUENCE: ['request' | 'reply', string][] = [
  ['request', 'S'],
  ['reply', 'SA'],
  ['request', 'A'],
  ['request', 'A'],
  ['reply', 'A'],
  ['request', 'FA'],
  ['reply', 'FA'],
  ['request', 'A'],
];
const UDP_SEQUENCE: ['request' | 'reply', string][] = [
  ['request', ''],
  ['reply', ''],
];

export interface ConnectionOptions {
  /** client source port (default 40000) */
  sport?: number;
  /** UDP request/reply exchanges on the same 5-tuple (default 1) */
  udpRounds?: number;
  /** only the first packet */
  single?: boolean;
  chooseBucket?: SimOptions['chooseBucket'];
  trace?: boolean;
  beforeBridge?: SendOptions['beforeBridge'];
}

const samePlace = (a: Place, b: Place) => placeKey(a) === placeKey(b);

export function runConnection(
  sim: ClusterSim,
  client: Place,
  dst: Destination,
  opts: ConnectionOptions = {},
): ConnectionResult {
  const src = `${sim.sourceAddress(client, dst.ip)}:${opts.sport ?? 40000}`;
  const d = `${dst.ip}:${dst.port}`;
  const request =
    dst.protocol === 'TCP' ? tcpPacket({ src, dst: d, flags: 'S' }) : udpPacket({ src, dst: d });
  const res: ConnectionResult = { client, request, steps: [] };
  const seq =
    dst.protocol === 'TCP'
      ? TCP_SEQUENCE
      : Array.from({ length: opts.udpRounds ?? 1 }, () => UDP_SEQUENCE).flat();
  const send = {
    chooseBucket: opts.chooseBucket,
    trace: opts.trace,
    beforeBridge: opts.beforeBridge,
  };
  for (const [i, [direction, flags]] of seq.entries()) {
    if (opts.single && i > 0) break;
    let from: Place;
    let packet: Packet;
    if (direction === 'request') {
      from = client;
      packet = dst.protocol === 'TCP' ? tcpPacket({ src, dst: d, flags }) : { ...request };
    } else {
      if (!res.server || !res.serverSaw) break;
      from = res.server;
      packet = replyTo(res.serverSaw, flags || 'A');
      if (dst.protocol !== 'TCP') delete packet.tcpFlags;
    }
    const journey = sim.send(from, packet, send);
    res.steps.push({ index: i, direction, flags, from, sent: packet, journey });
    const arrived = journey.arrivals;
    if (journey.verdict === 'error') {
      res.stopped = `packet ${i + 1} (${direction}): ${journey.error}`;
      break;
    }
    if (arrived.length === 0) {
      res.stopped = `packet ${i + 1} (${direction}) was dropped`;
      break;
    }
    if (i === 0 && arrived.length === 1) {
      res.server = arrived[0].place;
      res.serverSaw = arrived[0].packet;
    }
    const expected = direction === 'request' ? res.server : client;
    if (!expected || arrived.length !== 1 || !samePlace(arrived[0].place, expected)) {
      res.stopped = `packet ${i + 1} (${direction}) arrived at ${arrived.map((a) => placeKey(a.place)).join(', ')}`;
      break;
    }
  }
  return res;
}
