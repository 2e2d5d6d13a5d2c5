// Several bridges, their hosts and a wire, so a connection can be followed across nodes: an
// external client → node A's uplink → OVS → node B → pod, and the reply back. Each node is its
// pipeline (interpreted by simulate()) plus a host model: the Linux stack outside OVS, reduced to
// what the pipeline's paths rely on (routes, local addresses, per-interface forwarding and
// accept_local, neighbours, and the host-originated NodePort redirect).
import type { HostNeighbor, HostNodePortRedirect, HostPlan, HostRoute } from '../host/types.js';
import { Conntrack } from './conntrack.js';
import { type CompiledProgram, type SimOptions, type SimResult, simulate } from './interpreter.js';
import { type IpProto, type Packet, ipToNum, numToIp, parseCidr } from './packet.js';

// ---------------------------------------------------------------------------------------------
// Host model

export interface HostInterface {
  name: string;
  /** The OVS port this interface is (LOCAL for the bridge interface, the gateway's ofport). */
  port: number | 'LOCAL';
  mac: string;
  /** "ip/prefix": the address and its connected subnet */
  addresses: string[];
  forwarding: boolean;
  /** accept packets whose source is one of our own addresses (Linux accept_local) */
  acceptLocal: boolean;
}

export interface HostModel {
  interfaces: HostInterface[];
  routes: HostRoute[];
  neighbors: HostNeighbor[];
  redirects: HostNodePortRedirect[];
}

/** A host model from the compiler's HostPlan plus the interfaces the node really has. */
export function hostFromPlan(
  plan: HostPlan,
  interfaces: Omit<HostInterface, 'forwarding' | 'acceptLocal'>[],
): HostModel {
  const setting = (dev: string) => plan.interfaces.find((i) => i.device === dev);
  return {
    interfaces: interfaces.map((i) => ({
      ...i,
      forwarding: setting(i.name)?.forwarding ?? setting('all')?.forwarding ?? false,
      acceptLocal: setting(i.name)?.acceptLocal ?? false,
    })),
    routes: plan.routes,
    neighbors: plan.neighbors,
    redirects: plan.nodePortRedirects,
  };
}

interface CompiledRoute {
  addr: number;
  mask: number;
  len: number;
  dev: string;
  via?: number;
  src?: number;
}

/** Routes plus the connected subnets of the interfaces, longest prefix first. */
export class Routing {
  private readonly routes: CompiledRoute[];
  private readonly local = new Set<number>();

  constructor(readonly host: HostModel) {
    const rs: CompiledRoute[] = [];
    for (const i of host.interfaces)
      for (const a of i.addresses) {
        const c = parseCidr(a);
        const ip = ipToNum(a.split('/')[0]);
        this.local.add(ip);
        rs.push({ addr: c.addr, mask: c.mask, len: c.len, dev: i.name, src: ip });
      }
    for (const r of host.routes) {
      const c = parseCidr(r.destination);
      rs.push({
        addr: c.addr,
        mask: c.mask,
        len: c.len,
        dev: r.device,
        via: r.via ? ipToNum(r.via) : undefined,
        src: r.source ? ipToNum(r.source) : undefined,
      });
    }
    // Stable sort: among equal prefixes the earlier (connected first, then plan order) wins.
    this.routes = rs.sort((a, b) => b.len - a.len);
  }

  isLocal(ip: string): boolean {
    return this.local.has(ipToNum(ip));
  }

  lookup(dst: string): { dev: string; via?: string; src?: string } | null {
    const d = ipToNum(dst);
    for (const r of this.routes)
      if ((d & r.mask) >>> 0 === r.addr)
        return {
          dev: r.dev,
          via: r.via === undefined ? undefined : numToIp(r.via),
          src: r.src === undefined ? this.sourceFor(r.dev) : numToIp(r.src),
        };
    return null;
  }

  iface(name: string): HostInterface | undefined {
    return this.host.interfaces.find((i) => i.name === name);
  }

  private sourceFor(dev: string): string | undefined {
    const a = this.iface(dev)?.addresses[0];
    return a?.split('/')[0];
  }
}

export type HostVerdict =
  | { kind: 'local'; packet: Packet }
  | { kind: 'forward'; dev: string; port: number | 'LOCAL'; nextHop: string; packet: Packet }
  | { kind: 'drop'; reason: string };

/** Zones of the host's own conntrack: the redirect's DNAT, then its SNAT. */
const HOST_DNAT_ZONE = 1;
const HOST_SNAT_ZONE = 2;

const PROTO: Record<HostNodePortRedirect['protocol'], IpProto> = {
  TCP: 'tcp',
  UDP: 'udp',
  SCTP: 'sctp',
};

function ctPacket(p: Packet) {
  const tcp = p.tcpFlags ?? {};
  return {
    isIp: p.ethType === 'ip',
    proto: p.ipProto === 'tcp' ? 6 : p.ipProto === 'udp' ? 17 : p.ipProto === 'sctp' ? 132 : 1,
    src: ipToNum(p.ipSrc ?? '0.0.0.0'),
    dst: ipToNum(p.ipDst ?? '0.0.0.0'),
    sport: p.tpSrc ?? 0,
    dport: p.tpDst ?? 0,
    tcpFlags: (tcp.syn ? 2 : 0) | (tcp.ack ? 0x10 : 0) | (tcp.fin ? 1 : 0) | (tcp.rst ? 4 : 0),
  };
}

function applyRewrite(p: Packet, r: { src: number; sport: number; dst: number; dport: number }) {
  const out: Packet = { ...p, ipSrc: numToIp(r.src), ipDst: numToIp(r.dst) };
  if (p.tpSrc !== undefined) out.tpSrc = r.sport;
  if (p.tpDst !== undefined) out.tpDst = r.dport;
  return out;
}

/** The host stack's side of one node. Its conntrack belongs to the host, not to OVS. */
export class Host {
  readonly routing: Routing;

  constructor(
    readonly model: HostModel,
    readonly conntrack = new Conntrack(),
  ) {
    this.routing = new Routing(model);
  }

  /** A packet OVS sent out of one of the host's interfaces (LOCAL or the gateway). */
  receive(dev: string, packet: Packet, now: number): HostVerdict {
    const iface = this.routing.iface(dev);
    if (!iface) return { kind: 'drop', reason: `no interface ${dev}` };
    if (packet.ethType !== 'ip') return { kind: 'local', packet };
    // Replies of redirected connections: un-SNAT, then un-DNAT, before routing (as PREROUTING).
    let p = packet;
    for (const zone of [HOST_SNAT_ZONE, HOST_DNAT_ZONE]) {
      const r = this.conntrack.execute(ctPacket(p), { zone, commit: false, nat: 'existing' }, now);
      if (r.rewrite) p = applyRewrite(p, r.rewrite);
    }
    const dst = p.ipDst!;
    const src = p.ipSrc!;
    if (this.routing.isLocal(dst)) {
      if (this.routing.isLocal(src) && !iface.acceptLocal)
        return { kind: 'drop', reason: `local source ${src} on ${dev} without accept_local` };
      return { kind: 'local', packet: p };
    }
    if (!iface.forwarding) return { kind: 'drop', reason: `forwarding is off on ${dev}` };
    return this.route(p, false);
  }

  /** A packet the host itself sends (a hostNetwork client, kubelet, a NodePort curl). */
  send(packet: Packet, now: number): HostVerdict {
    let p = packet;
    const redirect = this.model.redirects.find(
      (r) =>
        PROTO[r.protocol] === p.ipProto && r.port === p.tpDst && r.addresses.includes(p.ipDst!),
    );
    if (redirect) {
      const ct = ctPacket(p);
      const d = this.conntrack.execute(
        ct,
        { zone: HOST_DNAT_ZONE, commit: true, nat: { type: 'dst', ip: redirect.toIP } },
        now,
      );
      if (d.rewrite) p = applyRewrite(p, d.rewrite);
      const s = this.conntrack.execute(
        ctPacket(p),
        { zone: HOST_SNAT_ZONE, commit: true, nat: { type: 'src', ip: redirect.snatIP } },
        now,
      );
      if (s.rewrite) p = applyRewrite(p, s.rewrite);
    } else {
      // Established redirected connections keep their translation.
      for (const zone of [HOST_DNAT_ZONE, HOST_SNAT_ZONE]) {
        const r = this.conntrack.execute(
          ctPacket(p),
          { zone, commit: false, nat: 'existing' },
          now,
        );
        if (r.rewrite) p = applyRewrite(p, r.rewrite);
      }
    }
    if (this.routing.isLocal(p.ipDst!)) return { kind: 'local', packet: p };
    return this.route(p, !redirect && packet.ipSrc === undefined);
  }

  private route(p: Packet, chooseSource: boolean): HostVerdict {
    const r = this.routing.lookup(p.ipDst!);
    if (!r) return { kind: 'drop', reason: `no route to ${p.ipDst}` };
    const iface = this.routing.iface(r.dev);
    if (!iface) return { kind: 'drop', reason: `route to ${p.ipDst} via unknown ${r.dev}` };
    const nextHop = r.via ?? p.ipDst!;
    const out: Packet = { ...p, ethSrc: iface.mac };
    if (chooseSource && r.src) out.ipSrc = r.src;
    const neigh = this.model.neighbors.find((n) => n.device === r.dev && n.ip === nextHop);
    if (neigh) out.ethDst = neigh.mac;
    return { kind: 'forward', dev: r.dev, port: iface.port, nextHop, packet: out };
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes, stations and the wire

export interface SimPod {
  ip: string;
  mac: string;
  ofport: number;
}

export interface SimNode {
  name: string;
  program: CompiledProgram;
  host: Host;
  /** OVS conntrack of this node's bridge. */
  conntrack: Conntrack;
  uplinkPort: number;
  /** MAC the node answers with on the wire (the uplink's, moved to the bridge interface). */
  uplinkMac: string;
  /** Addresses reachable on the wire at this node. */
  wireIPs: string[];
  pods: SimPod[];
}

/** A machine on the wire that is not a node: an external client or server. */
export interface Station {
  name: string;
  ip: string;
  mac: string;
}

export type Place =
  | { kind: 'station'; name: string }
  | { kind: 'pod'; node: string; ip: string }
  | { kind: 'host'; node: string };

export type Hop =
  | { kind: 'bridge'; node: string; inPort: number | 'LOCAL'; packet: Packet; result: SimResult }
  | { kind: 'host'; node: string; dev?: string; packet: Packet; verdict: HostVerdict }
  | { kind: 'wire'; from: string; packet: Packet; to: string[] };

export interface Journey {
  /** error (a bridge failed or the hop limit) > duplicate > delivered > dropped */
  verdict: 'delivered' | 'dropped' | 'duplicate' | 'error';
  arrivals: { place: Place; packet: Packet }[];
  hops: Hop[];
  error?: string;
}

type Work =
  | { kind: 'bridge'; node: SimNode; inPort: number | 'LOCAL'; packet: Packet }
  | { kind: 'host-in'; node: SimNode; dev: string; packet: Packet }
  | { kind: 'host-out'; node: SimNode; packet: Packet }
  | { kind: 'wire'; from: string; packet: Packet };

export interface SendOptions {
  now?: number;
  chooseBucket?: SimOptions['chooseBucket'];
  /** Bridge passes, host passes and wire crossings allowed before calling it a loop. */
  maxHops?: number;
}

export class Network {
  private readonly nodes = new Map<string, SimNode>();
  private readonly stations = new Map<string, Station>();

  constructor(nodes: SimNode[], stations: Station[] = []) {
    for (const n of nodes) this.nodes.set(n.name, n);
    for (const s of stations) this.stations.set(s.name, s);
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  /** The MAC that owns an address on the wire, as ARP would find it. */
  wireMac(ip: string): string | undefined {
    for (const s of this.stations.values()) if (s.ip === ip) return s.mac;
    for (const n of this.nodes.values()) if (n.wireIPs.includes(ip)) return n.uplinkMac;
    return undefined;
  }

  /** Sends a packet from a place and follows every copy until it arrives or dies. */
  send(from: Place, packet: Packet, opts: SendOptions = {}): Journey {
    const now = opts.now ?? 0;
    const maxHops = opts.maxHops ?? 64;
    const journey: Journey = { verdict: 'dropped', arrivals: [], hops: [] };
    const queue: Work[] = [];
    if (from.kind === 'station') queue.push({ kind: 'wire', from: from.name, packet });
    else if (from.kind === 'host')
      queue.push({ kind: 'host-out', node: this.node(from.node), packet });
    else {
      const node = this.node(from.node);
      const pod = node.pods.find((p) => p.ip === from.ip);
      if (!pod) throw new Error(`no pod ${from.ip} on ${from.node}`);
      queue.push({ kind: 'bridge', node, inPort: pod.ofport, packet });
    }
    let hops = 0;
    let duplicate = false;
    while (queue.length > 0) {
      if (++hops > maxHops) {
        journey.verdict = 'error';
        journey.error = `loop: more than ${maxHops} hops`;
        return journey;
      }
      const w = queue.shift()!;
      switch (w.kind) {
        case 'bridge': {
          const result = simulate(w.node.program, w.inPort, w.packet, {
            conntrack: w.node.conntrack,
            now,
            chooseBucket: opts.chooseBucket,
          });
          journey.hops.push({
            kind: 'bridge',
            node: w.node.name,
            inPort: w.inPort,
            packet: w.packet,
            result,
          });
          if (result.verdict === 'error') {
            journey.verdict = 'error';
            journey.error = `${w.node.name}: ${result.error}`;
            return journey;
          }
          if (result.verdict === 'duplicate') duplicate = true;
          for (const o of result.outputs) this.fromBridge(w.node, o.port, o.packet, queue, journey);
          break;
        }
        case 'host-in':
        case 'host-out': {
          const verdict =
            w.kind === 'host-in'
              ? w.node.host.receive(w.dev, w.packet, now)
              : w.node.host.send(w.packet, now);
          journey.hops.push({
            kind: 'host',
            node: w.node.name,
            dev: w.kind === 'host-in' ? w.dev : undefined,
            packet: w.packet,
            verdict,
          });
          if (verdict.kind === 'local')
            journey.arrivals.push({
              place: { kind: 'host', node: w.node.name },
              packet: verdict.packet,
            });
          else if (verdict.kind === 'forward') {
            const p = { ...verdict.packet };
            const mac = this.wireMac(verdict.nextHop);
            if (mac && verdict.packet.ethDst === w.packet.ethDst) p.ethDst = mac;
            queue.push({ kind: 'bridge', node: w.node, inPort: verdict.port, packet: p });
          }
          break;
        }
        case 'wire': {
          const to: string[] = [];
          const broadcast = w.packet.ethDst === 'ff:ff:ff:ff:ff:ff';
          for (const s of this.stations.values())
            if (s.name !== w.from && (broadcast || s.mac === w.packet.ethDst)) {
              to.push(s.name);
              journey.arrivals.push({ place: { kind: 'station', name: s.name }, packet: w.packet });
            }
          for (const n of this.nodes.values())
            if (n.name !== w.from && (broadcast || n.uplinkMac === w.packet.ethDst)) {
              to.push(n.name);
              queue.push({ kind: 'bridge', node: n, inPort: n.uplinkPort, packet: w.packet });
            }
          journey.hops.push({ kind: 'wire', from: w.from, packet: w.packet, to });
          break;
        }
      }
    }
    if (journey.arrivals.length > 1 || duplicate) journey.verdict = 'duplicate';
    else if (journey.arrivals.length === 1) journey.verdict = 'delivered';
    return journey;
  }

  private fromBridge(
    node: SimNode,
    port: number | 'LOCAL',
    packet: Packet,
    queue: Work[],
    journey: Journey,
  ): void {
    if (port === node.uplinkPort) {
      queue.push({ kind: 'wire', from: node.name, packet });
      return;
    }
    const pod = node.pods.find((p) => p.ofport === port);
    if (pod) {
      journey.arrivals.push({ place: { kind: 'pod', node: node.name, ip: pod.ip }, packet });
      return;
    }
    const iface = node.host.model.interfaces.find((i) => i.port === port);
    if (iface) {
      queue.push({ kind: 'host-in', node, dev: iface.name, packet });
      return;
    }
    journey.hops.push({
      kind: 'host',
      node: node.name,
      packet,
      verdict: { kind: 'drop', reason: `output to port ${port}, which nothing is attached to` },
    });
  }
}
