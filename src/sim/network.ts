// Several bridges, their hosts and a wire, so a connection can be followed across nodes: an
// external client → node A's uplink → OVS → node B → pod, and the reply back. Each node is its
// pipeline (interpreted by simulate()) plus a host model: the Linux stack outside OVS, reduced to
// what the pipeline's paths rely on (routes, local addresses, per-interface forwarding and
// accept_local, neighbours, and the host-originated NodePort redirect).
import type { HostNeighbor, HostNodePortRedirect, HostPlan, HostRoute } from '../host/types.js';
import { Conntrack } from './conntrack.js';
import { type CompiledProgram, type SimOptions, type SimResult, simulate } from './interpreter.js';
import { type IpProto, type Packet, arpRequest, ipToNum, numToIp, parseCidr } from './packet.js';

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
  /** 127.0.0.0/8 is not martian on this interface (Linux route_localnet) */
  routeLocalnet?: boolean;
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
  interfaces: Omit<HostInterface, 'forwarding' | 'acceptLocal' | 'routeLocalnet'>[],
): HostModel {
  const setting = (dev: string) => plan.interfaces.find((i) => i.device === dev);
  return {
    interfaces: interfaces.map((i) => ({
      ...i,
      forwarding: setting(i.name)?.forwarding ?? setting('all')?.forwarding ?? false,
      acceptLocal: setting(i.name)?.acceptLocal ?? false,
      routeLocalnet: setting(i.name)?.routeLocalnet ?? false,
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

  /** Our own addresses; the loopback net is always local (lo exists on every host). */
  isLocal(ip: string): boolean {
    const n = ipToNum(ip);
    return this.local.has(n) || n >>> 24 === 127;
  }

  /** The source address the host picks for a connection to `dst`, as Linux does. */
  sourceTo(dst: string): string | undefined {
    if (this.isLocal(dst)) return dst;
    return this.lookup(dst)?.src;
  }

  lookup(dst: string): { dev: string; via?: string; src?: string } | null {
    const d = ipToNum(dst);
    for (const r of this.routes)
      if ((d & r.mask) >>> 0 === r.addr)
        return {
          dev: r.dev,
          via: r.via === undefined ? undefined : numToIp(r.via),
          src: r.src === undefined ? this.firstAddressOf(r.dev) : numToIp(r.src),
        };
    return null;
  }

  iface(name: string): HostInterface | undefined {
    return this.host.interfaces.find((i) => i.name === name);
  }

  private firstAddressOf(dev: string): string | undefined {
    const a = this.iface(dev)?.addresses[0];
    return a?.split('/')[0];
  }
}

export type HostVerdict =
  | { kind: 'local'; packet: Packet }
  | {
      kind: 'forward';
      dev: string;
      port: number | 'LOCAL';
      nextHop: string;
      packet: Packet;
      /** the destination MAC came from a permanent neighbour; otherwise ARP must find it */
      resolved: boolean;
    }
  /** the host answers an ARP request for one of its addresses, back out of `dev` */
  | { kind: 'arp-reply'; dev: string; port: number | 'LOCAL'; packet: Packet }
  | { kind: 'drop'; reason: string };

const isLoopback = (ip: string) => ipToNum(ip) >>> 24 === 127;

/** The answer a stack gives to an ARP request for `mac`'s address. */
export function arpAnswer(request: Packet, mac: string): Packet {
  return {
    ethSrc: mac,
    ethDst: request.arpSha ?? request.ethSrc,
    ethType: 'arp',
    arpOp: 2,
    arpSha: mac,
    arpSpa: request.arpTpa,
    arpTha: request.arpSha,
    arpTpa: request.arpSpa,
  };
}

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
    if (packet.ethType !== 'ip') {
      // arp_ignore 0: any local address is answered on any interface.
      if (packet.arpOp === 1 && packet.arpTpa && this.routing.isLocal(packet.arpTpa))
        return { kind: 'arp-reply', dev, port: iface.port, packet: arpAnswer(packet, iface.mac) };
      if (packet.arpOp === 2) return { kind: 'local', packet };
      return { kind: 'drop', reason: `ARP for ${packet.arpTpa ?? '?'}: not ours` };
    }
    let p = packet;
    // A pod's packet to this node's own IP:NodePort: the redirect's PREROUTING DNAT, then
    // POSTROUTING's SNAT (oif gateway, daddr the virtual IP), which forwarded packets meet too.
    // Both commits apply the existing translation to a connection's later packets.
    const fwd = this.model.redirects.find(
      (r) =>
        r.forwarded?.device === dev &&
        PROTO[r.protocol] === p.ipProto &&
        r.port === p.tpDst &&
        r.forwarded.addresses.includes(p.ipDst!),
    );
    if (fwd) {
      const d = this.conntrack.execute(
        ctPacket(p),
        { zone: HOST_DNAT_ZONE, commit: true, nat: { type: 'dst', ip: fwd.toIP } },
        now,
      );
      if (d.rewrite) p = applyRewrite(p, d.rewrite);
      const sn = this.conntrack.execute(
        ctPacket(p),
        { zone: HOST_SNAT_ZONE, commit: true, nat: { type: 'src', ip: fwd.snatIP } },
        now,
      );
      if (sn.rewrite) p = applyRewrite(p, sn.rewrite);
    } else {
      // Replies of redirected connections: un-SNAT, then un-DNAT, before routing (PREROUTING).
      for (const zone of [HOST_SNAT_ZONE, HOST_DNAT_ZONE]) {
        const r = this.conntrack.execute(
          ctPacket(p),
          { zone, commit: false, nat: 'existing' },
          now,
        );
        if (r.rewrite) p = applyRewrite(p, r.rewrite);
      }
    }
    const dst = p.ipDst!;
    const src = p.ipSrc!;
    // Linux drops 127/8 arriving from outside (martian) unless route_localnet is on.
    if ((isLoopback(dst) || isLoopback(src)) && !iface.routeLocalnet)
      return { kind: 'drop', reason: `martian ${src} -> ${dst} on ${dev} (route_localnet off)` };
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
    return {
      kind: 'forward',
      dev: r.dev,
      port: iface.port,
      nextHop,
      packet: out,
      resolved: neigh !== undefined,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes, stations and the wire

export interface SimPod {
  ip: string;
  mac: string;
  ofport: number;
  /** on-link prefix length and default gateway: what the pod ARPs for (ARP mode) */
  prefix?: number;
  gateway?: string;
}

export interface SimNode {
  name: string;
  program: CompiledProgram;
  host: Host;
  /** OVS conntrack of this node's bridge. */
  conntrack: Conntrack;
  uplinkPort: number;
  /** MAC the node answers with on the wire (the bridge interface's, seen behind the uplink). */
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
  /** on-link prefix length (ARP mode; default 24); the station has no router */
  prefix?: number;
}

export type Place =
  | { kind: 'station'; name: string }
  | { kind: 'pod'; node: string; ip: string }
  | { kind: 'host'; node: string };

export type Hop =
  | { kind: 'bridge'; node: string; inPort: number | 'LOCAL'; packet: Packet; result: SimResult }
  | { kind: 'host'; node: string; dev?: string; packet: Packet; verdict: HostVerdict }
  | { kind: 'wire'; from: string; packet: Packet; to: string[] }
  /** an ARP exchange a sender needed before it could send: its own hops, and the answer */
  | { kind: 'arp'; place: Place; dev?: string; ip: string; mac: string | null; hops: Hop[] }
  | { kind: 'drop'; place: Place; reason: string };

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
  /** Record bridge traces (default true). */
  trace?: boolean;
  /** Called before each bridge pass, while its conntrack is still as the packet finds it. */
  beforeBridge?: (node: SimNode, inPort: number | 'LOCAL', packet: Packet) => void;
}

export interface NetworkOptions {
  /**
   * Senders resolve next hops with ARP through the bridges and the wire, as real stacks do
   * (the pipeline's ARP responder answers for pods, the gateway and virtual addresses; node
   * hosts and stations answer for their own). Answers are cached per sender until
   * clearNeighbors(). Without it the wire owner's MAC is filled in directly.
   */
  arp?: boolean;
}

interface RunCtx {
  journey: Journey;
  now: number;
  maxHops: number;
  hops: number;
  duplicate: boolean;
  chooseBucket?: SimOptions['chooseBucket'];
  trace: boolean;
  beforeBridge?: SendOptions['beforeBridge'];
  /** inside an ARP exchange: no further resolution */
  resolving: boolean;
}

const BROADCAST = 'ff:ff:ff:ff:ff:ff';

function inSubnet(ip: string, on: string, prefix: number): boolean {
  const c = parseCidr(`${on}/${prefix}`);
  return (ipToNum(ip) & c.mask) >>> 0 === c.addr;
}

export function placeKey(p: Place): string {
  return p.kind === 'station'
    ? `station:${p.name}`
    : p.kind === 'pod'
      ? `pod:${p.ip}`
      : `host:${p.node}`;
}

export class Network {
  private readonly nodes = new Map<string, SimNode>();
  private readonly stations = new Map<string, Station>();
  private readonly neighbors = new Map<string, string>();
  readonly arp: boolean;

  constructor(nodes: SimNode[], stations: Station[] = [], opts: NetworkOptions = {}) {
    for (const n of nodes) this.nodes.set(n.name, n);
    for (const s of stations) this.stations.set(s.name, s);
    this.arp = opts.arp ?? false;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  station(name: string): Station | undefined {
    return this.stations.get(name);
  }

  addStation(s: Station): void {
    this.stations.set(s.name, s);
  }

  /** Forget every learned neighbour (a fresh start for the next experiment). */
  clearNeighbors(): void {
    this.neighbors.clear();
  }

  /** The MAC that owns an address on the wire, as ARP would find it. */
  wireMac(ip: string): string | undefined {
    for (const s of this.stations.values()) if (s.ip === ip) return s.mac;
    for (const n of this.nodes.values()) if (n.wireIPs.includes(ip)) return n.uplinkMac;
    return undefined;
  }

  /** Sends a packet from a place and follows every copy until it arrives or dies. */
  send(from: Place, packet: Packet, opts: SendOptions = {}): Journey {
    const journey: Journey = { verdict: 'dropped', arrivals: [], hops: [] };
    const ctx: RunCtx = {
      journey,
      now: opts.now ?? 0,
      maxHops: opts.maxHops ?? 64,
      hops: 0,
      duplicate: false,
      chooseBucket: opts.chooseBucket,
      trace: opts.trace ?? true,
      beforeBridge: opts.beforeBridge,
      resolving: false,
    };
    const queue: Work[] = [];
    this.originate(from, packet, queue, ctx);
    this.run(queue, ctx);
    if (journey.verdict === 'error') return journey;
    if (journey.arrivals.length > 1 || ctx.duplicate) journey.verdict = 'duplicate';
    else if (journey.arrivals.length === 1) journey.verdict = 'delivered';
    return journey;
  }

  private originate(from: Place, packet: Packet, queue: Work[], ctx: RunCtx): void {
    if (from.kind === 'host') {
      queue.push({ kind: 'host-out', node: this.node(from.node), packet });
      return;
    }
    if (from.kind === 'station') {
      const st = this.stations.get(from.name);
      if (!st) throw new Error(`unknown station ${from.name}`);
      let p = packet;
      if (this.arp && packet.ethType === 'ip') {
        const dst = packet.ipDst!;
        if (!inSubnet(dst, st.ip, st.prefix ?? 24)) {
          this.dropHop(ctx, from, `${st.name} has no route to ${dst}`);
          return;
        }
        const mac = this.resolve(from, undefined, dst, st.ip, st.mac, ctx);
        if (!mac) return;
        p = { ...packet, ethSrc: st.mac, ethDst: mac };
      }
      queue.push({ kind: 'wire', from: from.name, packet: p });
      return;
    }
    const node = this.node(from.node);
    const pod = node.pods.find((x) => x.ip === from.ip);
    if (!pod) throw new Error(`no pod ${from.ip} on ${from.node}`);
    let p = packet;
    if (this.arp && packet.ethType === 'ip') {
      const dst = packet.ipDst!;
      const onLink = pod.prefix !== undefined && inSubnet(dst, pod.ip, pod.prefix);
      const nextHop = onLink || !pod.gateway ? dst : pod.gateway;
      const mac = this.resolve(from, undefined, nextHop, pod.ip, pod.mac, ctx);
      if (!mac) return;
      p = { ...packet, ethSrc: pod.mac, ethDst: mac };
    }
    queue.push({ kind: 'bridge', node, inPort: pod.ofport, packet: p });
  }

  private dropHop(ctx: RunCtx, place: Place, reason: string): void {
    ctx.journey.hops.push({ kind: 'drop', place, reason });
  }

  /**
   * ARP for `ip` from a place (out of `dev` for a host): the request really travels through the
   * bridges and the wire; null when nobody answered (the packet waiting for it is dropped).
   */
  private resolve(
    place: Place,
    dev: string | undefined,
    ip: string,
    spa: string,
    sha: string,
    ctx: RunCtx,
  ): string | null {
    const key = `${placeKey(place)}|${dev ?? ''}|${ip}`;
    const cached = this.neighbors.get(key);
    if (cached) return cached;
    if (ctx.resolving) {
      this.dropHop(ctx, place, `ARP for ${ip} needed while resolving another address`);
      return null;
    }
    const req = arpRequest({ sha, spa, tpa: ip });
    const sub: Journey = { verdict: 'dropped', arrivals: [], hops: [] };
    const sctx: RunCtx = { ...ctx, journey: sub, hops: 0, duplicate: false, resolving: true };
    const queue: Work[] = [];
    if (place.kind === 'station') queue.push({ kind: 'wire', from: place.name, packet: req });
    else if (place.kind === 'pod') {
      const node = this.node(place.node);
      const pod = node.pods.find((x) => x.ip === place.ip)!;
      queue.push({ kind: 'bridge', node, inPort: pod.ofport, packet: req });
    } else {
      const node = this.node(place.node);
      const iface = node.host.routing.iface(dev!)!;
      queue.push({ kind: 'bridge', node, inPort: iface.port, packet: req });
    }
    this.run(queue, sctx);
    const want = placeKey(place);
    const answer = sub.arrivals.find(
      (a) =>
        placeKey(a.place) === want &&
        a.packet.ethType === 'arp' &&
        a.packet.arpOp === 2 &&
        a.packet.arpSpa === ip,
    );
    const mac = answer?.packet.arpSha ?? null;
    ctx.journey.hops.push({ kind: 'arp', place, dev, ip, mac, hops: sub.hops });
    if (sub.verdict === 'error') {
      ctx.journey.verdict = 'error';
      ctx.journey.error = sub.error;
      return null;
    }
    if (!mac) {
      this.dropHop(ctx, place, `ARP for ${ip}${dev ? ` on ${dev}` : ''}: no answer`);
      return null;
    }
    this.neighbors.set(key, mac);
    return mac;
  }

  private run(queue: Work[], ctx: RunCtx): void {
    const journey = ctx.journey;
    while (queue.length > 0 && journey.verdict !== 'error') {
      if (++ctx.hops > ctx.maxHops) {
        journey.verdict = 'error';
        journey.error = `loop: more than ${ctx.maxHops} hops`;
        return;
      }
      const w = queue.shift()!;
      switch (w.kind) {
        case 'bridge': {
          ctx.beforeBridge?.(w.node, w.inPort, w.packet);
          const result = simulate(w.node.program, w.inPort, w.packet, {
            conntrack: w.node.conntrack,
            now: ctx.now,
            chooseBucket: ctx.chooseBucket,
            trace: ctx.trace,
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
            return;
          }
          if (result.verdict === 'duplicate') ctx.duplicate = true;
          for (const o of result.outputs) this.fromBridge(w.node, o.port, o.packet, queue, ctx);
          break;
        }
        case 'host-in':
        case 'host-out': {
          const verdict =
            w.kind === 'host-in'
              ? w.node.host.receive(w.dev, w.packet, ctx.now)
              : w.node.host.send(w.packet, ctx.now);
          journey.hops.push({
            kind: 'host',
            node: w.node.name,
            dev: w.kind === 'host-in' ? w.dev : undefined,
            packet: w.packet,
            verdict,
          });
          const place: Place = { kind: 'host', node: w.node.name };
          if (verdict.kind === 'local') journey.arrivals.push({ place, packet: verdict.packet });
          else if (verdict.kind === 'arp-reply')
            queue.push({
              kind: 'bridge',
              node: w.node,
              inPort: verdict.port,
              packet: verdict.packet,
            });
          else if (verdict.kind === 'forward') {
            const p = { ...verdict.packet };
            if (this.arp) {
              if (!verdict.resolved) {
                const iface = w.node.host.routing.iface(verdict.dev)!;
                // Linux (arp_announce 0) asks with the packet's own source when that address
                // is ours on any interface (e.g. the gateway IP after the NodePort SNAT).
                const src = p.ipSrc;
                const spa =
                  src && w.node.host.routing.isLocal(src)
                    ? src
                    : (iface.addresses[0]?.split('/')[0] ?? '0.0.0.0');
                const mac = this.resolve(place, verdict.dev, verdict.nextHop, spa, iface.mac, ctx);
                if (!mac) break;
                p.ethDst = mac;
              }
            } else {
              const mac = this.wireMac(verdict.nextHop);
              if (mac && !verdict.resolved) p.ethDst = mac;
            }
            queue.push({ kind: 'bridge', node: w.node, inPort: verdict.port, packet: p });
          }
          break;
        }
        case 'wire': {
          const to: string[] = [];
          const broadcast = w.packet.ethDst === BROADCAST;
          for (const s of this.stations.values())
            if (s.name !== w.from && (broadcast || s.mac === w.packet.ethDst)) {
              to.push(s.name);
              this.atStation(s, w.packet, queue, ctx);
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
  }

  private atStation(s: Station, packet: Packet, queue: Work[], ctx: RunCtx): void {
    if (packet.ethType === 'arp' && packet.arpOp === 1) {
      // Stations answer ARP for their own address and ignore the rest of the broadcast.
      if (packet.arpTpa === s.ip)
        queue.push({ kind: 'wire', from: s.name, packet: arpAnswer(packet, s.mac) });
      return;
    }
    ctx.journey.arrivals.push({ place: { kind: 'station', name: s.name }, packet });
  }

  private fromBridge(
    node: SimNode,
    port: number | 'LOCAL',
    packet: Packet,
    queue: Work[],
    ctx: RunCtx,
  ): void {
    if (port === node.uplinkPort) {
      queue.push({ kind: 'wire', from: node.name, packet });
      return;
    }
    const pod = node.pods.find((p) => p.ofport === port);
    if (pod) {
      if (packet.ethType === 'arp' && packet.arpOp === 1) {
        if (packet.arpTpa === pod.ip)
          queue.push({
            kind: 'bridge',
            node,
            inPort: pod.ofport,
            packet: arpAnswer(packet, pod.mac),
          });
        return;
      }
      ctx.journey.arrivals.push({ place: { kind: 'pod', node: node.name, ip: pod.ip }, packet });
      return;
    }
    const iface = node.host.model.interfaces.find((i) => i.port === port);
    if (iface) {
      queue.push({ kind: 'host-in', node, dev: iface.name, packet });
      return;
    }
    ctx.journey.hops.push({
      kind: 'host',
      node: node.name,
      packet,
      verdict: { kind: 'drop', reason: `output to port ${port}, which nothing is attached to` },
    });
  }
}
