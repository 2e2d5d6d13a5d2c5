// Packets for the simulator: a readable form (strings for addresses) used at the edges, and the
// flat numeric form the interpreter works on, one slot per field so that matching and cloning a
// packet are array operations.
import type { PortRef } from '../openflow/types.js';

export type IpProto = 'tcp' | 'udp' | 'sctp' | 'icmp' | 'igmp';

export const PROTO_NUMBER: Record<IpProto, number> = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  sctp: 132,
};
const PROTO_NAME = new Map(Object.entries(PROTO_NUMBER).map(([k, v]) => [v, k as IpProto]));

export interface TcpFlags {
  syn?: boolean;
  ack?: boolean;
  fin?: boolean;
  rst?: boolean;
}

/** A packet as it enters or leaves a bridge. Absent fields are absent on the wire. */
export interface Packet {
  ethSrc: string;
  ethDst: string;
  ethType: 'ip' | 'arp';
  ipSrc?: string;
  ipDst?: string;
  ipProto?: IpProto;
  /** TCP/UDP/SCTP ports; for ICMP the echo identifier, the way conntrack keys it. */
  tpSrc?: number;
  tpDst?: number;
  tcpFlags?: TcpFlags;
  arpOp?: number;
  arpSha?: string;
  arpTha?: string;
  arpSpa?: string;
  arpTpa?: string;
}

/** Ports as numbers inside the simulator. LOCAL is OpenFlow 1.1+'s OFPP_LOCAL. */
export const OFPP_LOCAL = 0xfffffffe;

export function portNumber(port: Exclude<PortRef, 'IN_PORT'>): number {
  return port === 'LOCAL' ? OFPP_LOCAL : port;
}

export function portRef(n: number): number | 'LOCAL' {
  return n === OFPP_LOCAL ? 'LOCAL' : n;
}

// ---------------------------------------------------------------------------------------------
// Addresses

export function ipToNum(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`bad IPv4 address "${ip}"`);
  let n = 0;
  for (const p of parts) {
    const o = Number(p);
    if (!/^\d{1,3}$/.test(p) || o > 255) throw new Error(`bad IPv4 address "${ip}"`);
    n = n * 256 + o;
  }
  return n;
}

export function numToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** "10.0.0.0/24" → address and mask as unsigned numbers. */
export function parseCidr(cidr: string): { addr: number; mask: number; len: number } {
  const [a, l] = cidr.split('/');
  const len = l === undefined ? 32 : Number(l);
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new Error(`bad CIDR "${cidr}"`);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { addr: (ipToNum(a) & mask) >>> 0, mask, len };
}

export function macToNum(mac: string): number {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`bad MAC "${mac}"`);
  return parseInt(mac.replace(/:/g, ''), 16);
}

export function numToMac(n: number): string {
  return n.toString(16).padStart(12, '0').match(/../g)!.join(':');
}

// ---------------------------------------------------------------------------------------------
// Flat packet state

/** Slot numbers in the flat state. Match fields come first, in the order the classifier uses. */
export const F = {
  inPort: 0,
  ethType: 1,
  ipProto: 2,
  dlSrc: 3,
  dlDst: 4,
  nwSrc: 5,
  nwDst: 6,
  tpSrc: 7,
  tpDst: 8,
  arpOp: 9,
  arpSpa: 10,
  arpTpa: 11,
  reg0: 12, // reg0..reg15 are 12..27
  ctState: 28,
  ctMark: 29,
  arpSha: 30,
  arpTha: 31,
  ctZone: 32,
  tcpFlags: 33,
  icmpId: 34,
} as const;
export const STATE_SIZE = 35;

/** Absent field (IP fields of an ARP packet, ports of ICMP): matches no flow that names it. */
export const ABSENT = -1;

export const ETH_IP = 0x0800;
export const ETH_ARP = 0x0806;

/** ct_state bits, as OVS numbers them. */
export const CS = {
  new: 0x01,
  est: 0x02,
  rel: 0x04,
  rpl: 0x08,
  inv: 0x10,
  trk: 0x20,
  snat: 0x40,
  dnat: 0x80,
} as const;

export const TCP = { fin: 0x01, syn: 0x02, rst: 0x04, ack: 0x10 } as const;

export type State = number[];

export function ctStateString(bits: number): string {
  if (bits === 0) return '-trk';
  const order: (keyof typeof CS)[] = ['new', 'est', 'rel', 'rpl', 'inv', 'trk', 'snat', 'dnat'];
  return order
    .filter((f) => bits & CS[f])
    .map((f) => '+' + f)
    .join('');
}

function flagsToBits(f: TcpFlags | undefined): number {
  if (!f) return 0;
  return (
    (f.syn ? TCP.syn : 0) | (f.ack ? TCP.ack : 0) | (f.fin ? TCP.fin : 0) | (f.rst ? TCP.rst : 0)
  );
}

export function toState(p: Packet, inPort: number): State {
  const s: State = new Array<number>(STATE_SIZE).fill(0);
  s[F.inPort] = inPort;
  s[F.dlSrc] = macToNum(p.ethSrc);
  s[F.dlDst] = macToNum(p.ethDst);
  const ip = p.ethType === 'ip';
  s[F.ethType] = ip ? ETH_IP : ETH_ARP;
  s[F.ipProto] = ip && p.ipProto ? PROTO_NUMBER[p.ipProto] : ABSENT;
  s[F.nwSrc] = ip && p.ipSrc ? ipToNum(p.ipSrc) : ABSENT;
  s[F.nwDst] = ip && p.ipDst ? ipToNum(p.ipDst) : ABSENT;
  const ports = ip && (p.ipProto === 'tcp' || p.ipProto === 'udp' || p.ipProto === 'sctp');
  s[F.tpSrc] = ports ? (p.tpSrc ?? 0) : ABSENT;
  s[F.tpDst] = ports ? (p.tpDst ?? 0) : ABSENT;
  s[F.arpOp] = ip ? ABSENT : (p.arpOp ?? 1);
  s[F.arpSpa] = !ip && p.arpSpa ? ipToNum(p.arpSpa) : ABSENT;
  s[F.arpTpa] = !ip && p.arpTpa ? ipToNum(p.arpTpa) : ABSENT;
  s[F.arpSha] = !ip && p.arpSha ? macToNum(p.arpSha) : ABSENT;
  s[F.arpTha] = !ip && p.arpTha ? macToNum(p.arpTha) : ABSENT;
  s[F.tcpFlags] = p.ipProto === 'tcp' ? flagsToBits(p.tcpFlags) : 0;
  // The ICMP echo id keys conntrack only; OpenFlow tp_* fields stay absent for ICMP.
  s[F.icmpId] = ip && p.ipProto === 'icmp' ? (p.tpSrc ?? 0) : 0;
  return s;
}

export function fromState(s: State): Packet {
  const ip = s[F.ethType] === ETH_IP;
  const p: Packet = { ethSrc: numToMac(s[F.dlSrc]), ethDst: numToMac(s[F.dlDst]), ethType: 'ip' };
  if (!ip) {
    p.ethType = 'arp';
    p.arpOp = s[F.arpOp];
    if (s[F.arpSha] !== ABSENT) p.arpSha = numToMac(s[F.arpSha]);
    if (s[F.arpTha] !== ABSENT) p.arpTha = numToMac(s[F.arpTha]);
    if (s[F.arpSpa] !== ABSENT) p.arpSpa = numToIp(s[F.arpSpa]);
    if (s[F.arpTpa] !== ABSENT) p.arpTpa = numToIp(s[F.arpTpa]);
    return p;
  }
  if (s[F.nwSrc] !== ABSENT) p.ipSrc = numToIp(s[F.nwSrc]);
  if (s[F.nwDst] !== ABSENT) p.ipDst = numToIp(s[F.nwDst]);
  const proto = PROTO_NAME.get(s[F.ipProto]);
  if (proto) p.ipProto = proto;
  if (s[F.tpSrc] !== ABSENT) p.tpSrc = s[F.tpSrc];
  if (s[F.tpDst] !== ABSENT) p.tpDst = s[F.tpDst];
  if (proto === 'icmp') p.tpSrc = s[F.icmpId];
  if (proto === 'tcp') {
    const f = s[F.tcpFlags];
    p.tcpFlags = {};
    if (f & TCP.syn) p.tcpFlags.syn = true;
    if (f & TCP.ack) p.tcpFlags.ack = true;
    if (f & TCP.fin) p.tcpFlags.fin = true;
    if (f & TCP.rst) p.tcpFlags.rst = true;
  }
  return p;
}

/** "10.0.0.1:80" for the source or destination of a state. */
export function endpointOf(s: State, side: 'src' | 'dst'): string {
  const ip = s[side === 'src' ? F.nwSrc : F.nwDst];
  const port = s[side === 'src' ? F.tpSrc : F.tpDst];
  if (s[F.ethType] !== ETH_IP) {
    const a = s[side === 'src' ? F.arpSpa : F.arpTpa];
    return a === ABSENT ? 'arp' : `arp ${numToIp(a)}`;
  }
  const addr = ip === ABSENT ? '?' : numToIp(ip);
  return port === ABSENT ? addr : `${addr}:${port}`;
}

// ---------------------------------------------------------------------------------------------
// Builders for tests and callers

const DEFAULT_MAC = '02:00:00:00:00:01';

function splitEndpoint(ep: string): [string, number] {
  const i = ep.lastIndexOf(':');
  if (i < 0) return [ep, 0];
  return [ep.slice(0, i), Number(ep.slice(i + 1))];
}

/** TCP flags from tcpdump-style letters: "S", "SA", "A", "F", "FA", "R". */
export function tcpFlags(letters: string): TcpFlags {
  const f: TcpFlags = {};
  for (const c of letters) {
    if (c === 'S') f.syn = true;
    else if (c === 'A' || c === '.') f.ack = true;
    else if (c === 'F') f.fin = true;
    else if (c === 'R') f.rst = true;
    else throw new Error(`unknown TCP flag "${c}"`);
  }
  return f;
}

export interface L4Spec {
  src: string; // "ip:port"
  dst: string;
  ethSrc?: string;
  ethDst?: string;
}

function l4Packet(spec: L4Spec, ipProto: 'tcp' | 'udp'): Packet {
  const [ipSrc, tpSrc] = splitEndpoint(spec.src);
  const [ipDst, tpDst] = splitEndpoint(spec.dst);
  return {
    ethSrc: spec.ethSrc ?? DEFAULT_MAC,
    ethDst: spec.ethDst ?? DEFAULT_MAC,
    ethType: 'ip',
    ipSrc,
    ipDst,
    ipProto,
    tpSrc,
    tpDst,
  };
}

export function tcpPacket(spec: L4Spec & { flags?: string }): Packet {
  return { ...l4Packet(spec, 'tcp'), tcpFlags: tcpFlags(spec.flags ?? 'S') };
}

export function udpPacket(spec: L4Spec): Packet {
  return l4Packet(spec, 'udp');
}

export function arpRequest(spec: { sha: string; spa: string; tpa: string }): Packet {
  return {
    ethSrc: spec.sha,
    ethDst: 'ff:ff:ff:ff:ff:ff',
    ethType: 'arp',
    arpOp: 1,
    arpSha: spec.sha,
    arpSpa: spec.spa,
    arpTha: '00:00:00:00:00:00',
    arpTpa: spec.tpa,
  };
}

/** The same flow in the other direction, with the given TCP flags (addresses swapped). */
export function replyTo(p: Packet, flags = 'SA'): Packet {
  const r: Packet = {
    ...p,
    ethSrc: p.ethDst,
    ethDst: p.ethSrc,
    ipSrc: p.ipDst,
    ipDst: p.ipSrc,
    tpSrc: p.tpDst,
    tpDst: p.tpSrc,
  };
  if (p.ipProto === 'tcp') r.tcpFlags = tcpFlags(flags);
  return r;
}
