// A connection tracker with the semantics of the Open vSwitch userspace datapath, reduced to what
// a Service pipeline exercises: per-zone entries found by their original or their reply tuple,
// NAT bindings fixed at commit, ct_mark, and the new/est/rpl/inv states. Time is a parameter
// (seconds); nothing here reads a clock.
import type { NatSpec } from '../openflow/types.js';
import { CS, TCP, ipToNum, numToIp } from './packet.js';

export interface Tuple {
  src: number;
  sport: number;
  dst: number;
  dport: number;
}

export type TcpConnState = 'syn_sent' | 'established' | 'closing' | 'closed';

export interface Conn {
  id: number;
  zone: number;
  proto: number;
  /** The tuple of the packet that created the entry, before NAT. */
  orig: Tuple;
  /** The tuple a reply carries: the reverse of the original after NAT. */
  reply: Tuple;
  nat?: { type: 'src' | 'dst'; ip: number; port?: number };
  mark: number;
  replySeen: boolean;
  tcp?: TcpConnState;
  created: number;
  lastSeen: number;
}

/** Idle timeouts in seconds, close to the userspace datapath's defaults. */
export interface CtTimeouts {
  tcpOpening: number;
  tcpEstablished: number;
  tcpClosing: number;
  tcpClosed: number;
  otherFirst: number;
  otherBidir: number;
}

/**
 * Which TCP packets may create an entry. 'userspace' is what ovs-vswitchd 3.1's userspace
 * tracker does (measured): anything but SYN+ACK and illegal flag mixes, so mid-stream ACKs are
 * picked up. 'syn-only' accepts only a SYN without ACK, for pipelines that must not rely on
 * pick-up.
 */
export type TcpStartRule = 'userspace' | 'syn-only';

export interface ConntrackOptions {
  timeouts?: Partial<CtTimeouts>;
  tcpStart?: TcpStartRule;
}

export const DEFAULT_TIMEOUTS: CtTimeouts = {
  tcpOpening: 30,
  tcpEstablished: 24 * 3600,
  tcpClosing: 120,
  tcpClosed: 30,
  otherFirst: 60,
  otherBidir: 30,
};

/** What the ct action sees of a packet. Addresses and ports as numbers. */
export interface CtPacket {
  isIp: boolean;
  proto: number;
  src: number;
  sport: number;
  dst: number;
  dport: number;
  /** TCP flag bits (TCP.syn, …); 0 for other protocols. */
  tcpFlags: number;
}

export interface CtRequest {
  zone: number;
  commit: boolean;
  nat?: 'existing' | NatSpec;
  setMark?: { value: number; mask: number };
  /**
   * The packet was already NATed in this zone by an earlier ct in the same recirculation chain;
   * OVS does not translate it twice.
   */
  alreadyNated?: boolean;
}

export interface CtResult {
  /** ct_state bits (CS.*) for the recirculated packet. */
  state: number;
  mark: number;
  /** New addresses and ports when NAT applied to this packet. */
  rewrite?: Tuple;
  conn?: Conn;
  /** Why a packet is +inv, for traces. */
  note?: string;
}

/** A read-only view of one entry for listings and tests. */
export interface ConnView {
  zone: number;
  proto: number;
  orig: string;
  reply: string;
  nat?: string;
  mark: number;
  state: string;
}

const TCP_PROTO = 6;

function tupleKey(zone: number, proto: number, t: Tuple): string {
  return `${zone}|${proto}|${t.src}|${t.sport}|${t.dst}|${t.dport}`;
}

const reverse = (t: Tuple): Tuple => ({ src: t.dst, sport: t.dport, dst: t.src, dport: t.sport });
const fmt = (t: Tuple): string => `${numToIp(t.src)}:${t.sport}->${numToIp(t.dst)}:${t.dport}`;

interface IndexRef {
  id: number;
  reply: boolean;
}

export class Conntrack {
  private conns = new Map<number, Conn>();
  private index = new Map<string, IndexRef>();
  private nextId = 1;
  readonly timeouts: CtTimeouts;
  readonly tcpStart: TcpStartRule;

  constructor(opts: ConntrackOptions = {}) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.tcpStart = opts.tcpStart ?? 'userspace';
  }

  get size(): number {
    return this.conns.size;
  }

  /** An independent copy: what one simulation commits does not leak into the other. */
  clone(): Conntrack {
    const c = new Conntrack({ timeouts: this.timeouts, tcpStart: this.tcpStart });
    for (const [id, conn] of this.conns)
      c.conns.set(id, {
        ...conn,
        orig: { ...conn.orig },
        reply: { ...conn.reply },
        nat: conn.nat && { ...conn.nat },
      });
    c.index = new Map(this.index);
    c.nextId = this.nextId;
    return c;
  }

  /** All entries, in a stable order. */
  entries(): ConnView[] {
    return [...this.conns.values()]
      .sort((a, b) => a.zone - b.zone || a.id - b.id)
      .map((c) => ({
        zone: c.zone,
        proto: c.proto,
        orig: fmt(c.orig),
        reply: fmt(c.reply),
        nat: c.nat && `${c.nat.type} ${numToIp(c.nat.ip)}${c.nat.port ? ':' + c.nat.port : ''}`,
        mark: c.mark,
        state: c.tcp ?? (c.replySeen ? 'bidir' : 'first'),
      }));
  }

  /** Drops entries idle longer than their timeout. */
  expire(now: number): void {
    for (const c of [...this.conns.values()]) if (this.expired(c, now)) this.remove(c);
  }

  /** Deletes every entry in a zone whose original or reply tuple involves the address. */
  flushAddress(zone: number, ip: string): number {
    const n = ipToNum(ip);
    let removed = 0;
    for (const c of [...this.conns.values()]) {
      if (c.zone !== zone) continue;
      const t = [c.orig.src, c.orig.dst, c.reply.src, c.reply.dst];
      if (t.includes(n)) {
        this.remove(c);
        removed++;
      }
    }
    return removed;
  }

  lookup(
    zone: number,
    proto: number,
    t: Tuple,
    now: number,
  ): { conn: Conn; reply: boolean } | null {
    const ref = this.index.get(tupleKey(zone, proto, t));
    if (!ref) return null;
    const conn = this.conns.get(ref.id)!;
    if (this.expired(conn, now)) {
      this.remove(conn);
      return null;
    }
    return { conn, reply: ref.reply };
  }

  /** The ct action: look the packet up in a zone, maybe commit, maybe NAT. */
  execute(pkt: CtPacket, req: CtRequest, now: number): CtResult {
    if (!pkt.isIp) return { state: CS.trk | CS.inv, mark: 0, note: 'not IPv4' };
    const t: Tuple = { src: pkt.src, sport: pkt.sport, dst: pkt.dst, dport: pkt.dport };
    const isTcp = pkt.proto === TCP_PROTO;
    const syn = (pkt.tcpFlags & (TCP.syn | TCP.ack)) === TCP.syn;
    let found = this.lookup(req.zone, pkt.proto, t, now);

    // A fresh SYN on a connection that is over starts a new one, as the userspace TCP tracker does.
    if (found && isTcp && syn && !found.reply) {
      const st = found.conn.tcp;
      if (st === 'closing' || st === 'closed') {
        this.remove(found.conn);
        found = null;
      }
    }

    if (found) return this.existing(found.conn, found.reply, pkt, req, now);

    if (isTcp && !mayStart(pkt.tcpFlags, this.tcpStart))
      return { state: CS.trk | CS.inv, mark: 0, note: 'TCP flags cannot start a connection' };
    if (!req.commit) return { state: CS.trk | CS.new, mark: 0 };
    return this.create(pkt, t, req, now);
  }

  private existing(
    conn: Conn,
    reply: boolean,
    pkt: CtPacket,
    req: CtRequest,
    now: number,
  ): CtResult {
    if (conn.tcp === 'closed') return { state: CS.trk | CS.inv, mark: conn.mark, note: 'closed' };
    conn.lastSeen = now;
    if (reply) conn.replySeen = true;
    if (conn.proto === TCP_PROTO) {
      if (pkt.tcpFlags & TCP.rst) conn.tcp = 'closed';
      else if (pkt.tcpFlags & TCP.fin) conn.tcp = 'closing';
      else if (reply && conn.tcp === 'syn_sent') conn.tcp = 'established';
    }
    let state = CS.trk;
    if (reply) state |= CS.est | CS.rpl;
    else state |= conn.replySeen ? CS.est : CS.new;
    // A second commit may change the mark; the NAT binding stays what the first commit made.
    if (req.commit && req.setMark) conn.mark = mergeMark(conn.mark, req.setMark);
    const res: CtResult = { state, mark: conn.mark, conn };
    if (req.nat !== undefined && conn.nat && !req.alreadyNated) {
      res.rewrite = reply ? reverse(conn.orig) : reverse(conn.reply);
      const srcNat = conn.nat.type === 'src';
      // Un-NAT of a reply rewrites the other side: un-SNAT changes the destination.
      res.state |= srcNat !== reply ? CS.snat : CS.dnat;
    }
    return res;
  }

  private create(pkt: CtPacket, t: Tuple, req: CtRequest, now: number): CtResult {
    let reply = reverse(t);
    let nat: Conn['nat'];
    if (req.nat !== undefined && req.nat !== 'existing' && !req.alreadyNated) {
      const spec = req.nat;
      const ip = ipToNum(spec.ip);
      if (spec.type === 'dst') {
        nat = { type: 'dst', ip, port: spec.port };
        reply = { src: ip, sport: spec.port ?? t.dport, dst: t.src, dport: t.sport };
      } else {
        const port = spec.port ?? this.freeSourcePort(req.zone, pkt.proto, t, ip, spec.portRange);
        if (port === null) return { state: CS.trk | CS.inv, mark: 0, note: 'no free SNAT port' };
        nat = { type: 'src', ip, port: spec.port };
        reply = { src: t.dst, sport: t.dport, dst: ip, dport: port };
      }
    }
    const replyKey = tupleKey(req.zone, pkt.proto, reply);
    if (this.index.has(replyKey)) {
      // The translated tuple belongs to another connection: the commit fails.
      return { state: CS.trk | CS.inv, mark: 0, note: 'NAT tuple in use' };
    }
    const conn: Conn = {
      id: this.nextId++,
      zone: req.zone,
      proto: pkt.proto,
      orig: t,
      reply,
      nat,
      mark: req.setMark ? mergeMark(0, req.setMark) : 0,
      replySeen: false,
      tcp: pkt.proto === TCP_PROTO ? 'syn_sent' : undefined,
      created: now,
      lastSeen: now,
    };
    this.conns.set(conn.id, conn);
    this.index.set(tupleKey(req.zone, pkt.proto, t), { id: conn.id, reply: false });
    this.index.set(replyKey, { id: conn.id, reply: true });
    const res: CtResult = { state: CS.trk | CS.new, mark: conn.mark, conn };
    if (nat) {
      res.rewrite = reverse(reply);
      res.state |= nat.type === 'src' ? CS.snat : CS.dnat;
    }
    return res;
  }

  /**
   * SNAT keeps the source port when it is in range and the resulting reply tuple is free, else
   * the next free one in range (without a range: 1024-65535).
   */
  private freeSourcePort(
    zone: number,
    proto: number,
    t: Tuple,
    ip: number,
    range?: [number, number],
  ): number | null {
    const reply = { src: t.dst, sport: t.dport, dst: ip, dport: t.sport };
    const lo = range ? range[0] : 1024;
    const hi = range ? range[1] : 65535;
    const inRange = t.sport >= lo && t.sport <= hi;
    if ((inRange || !range) && !this.index.has(tupleKey(zone, proto, reply))) return t.sport;
    const span = hi - lo + 1;
    const start = inRange ? t.sport - lo : span - 1;
    for (let i = 1; i <= span; i++) {
      reply.dport = lo + ((start + i) % span);
      if (!this.index.has(tupleKey(zone, proto, reply))) return reply.dport;
    }
    return null;
  }

  private expired(c: Conn, now: number): boolean {
    const to = this.timeouts;
    let limit: number;
    if (c.tcp === 'syn_sent') limit = to.tcpOpening;
    else if (c.tcp === 'established') limit = to.tcpEstablished;
    else if (c.tcp === 'closing') limit = to.tcpClosing;
    else if (c.tcp === 'closed') limit = to.tcpClosed;
    else limit = c.replySeen ? to.otherBidir : to.otherFirst;
    return now - c.lastSeen > limit;
  }

  private remove(c: Conn): void {
    this.conns.delete(c.id);
    this.index.delete(tupleKey(c.zone, c.proto, c.orig));
    this.index.delete(tupleKey(c.zone, c.proto, c.reply));
  }
}

function mayStart(flags: number, rule: TcpStartRule): boolean {
  const syn = (flags & TCP.syn) !== 0;
  const ack = (flags & TCP.ack) !== 0;
  const rst = (flags & TCP.rst) !== 0;
  const fin = (flags & TCP.fin) !== 0;
  if (rule === 'syn-only') return syn && !ack && !rst && !fin;
  // A half-open SYN+ACK and illegal combinations are invalid; SYN or a mid-stream segment is not.
  return syn ? !ack && !rst && !fin : ack || rst;
}

export function mergeMark(old: number, set: { value: number; mask: number }): number {
  return ((old & ~set.mask) | (set.value & set.mask)) >>> 0;
}
