// The whole cluster in the simulator: every node's compiled pipeline, its host (from the host
// plan) and its pods, one wire joining the uplinks and an external client. Packets sent from a
// pod, a node host or an outside station take the steps real packets take, ARP included.
import type { NodeDataplane, SvcflowConfig } from '../config/types.js';
import { resolveNode } from '../config/resolve.js';
import { buildHostPlan } from '../host/plan.js';
import type { HostPlan } from '../host/types.js';
import type { ClusterState } from '../model/types.js';
import { macFromIp } from '../net/ipv4.js';
import type { Group } from '../openflow/types.js';
import { compileNode, type CompiledNode } from '../pipeline/compile.js';
import { EndpointIP } from '../pipeline/registers.js';
import { Conntrack } from './conntrack.js';
import { compileProgram, type CompiledProgram, type SimOptions } from './interpreter.js';
import {
  Host,
  Network,
  hostFromPlan,
  type HostModel,
  type Journey,
  type Place,
  type SendOptions,
  type SimPod,
  type Station,
} from './network.js';
import { type Packet, ipToNum, numToIp, parseCidr } from './packet.js';
import type { Destination } from './connection.js';

// Locally administered MAC prefixes (second byte) for what the cluster file does not name.
const LOCAL_MAC_PREFIX = 0x5b;
const UPLINK_MAC_PREFIX = 0x5c;
const STATION_MAC_PREFIX = 0x5d;

export interface ClusterSimOptions {
  /** the nodes' L2 segment; default the /24 around the first node's main IP */
  underlayCIDR?: string;
  /** the external client; default .100 of the underlay, or the next free address */
  externalIP?: string;
}

export interface SimPodInfo extends SimPod {
  namespace: string;
  name: string;
}

export interface NodeModel {
  name: string;
  dp: NodeDataplane;
  plan: HostPlan;
  compiled: CompiledNode;
  program: CompiledProgram;
  host: HostModel;
  /** the bridge interface's MAC: what the node answers ARP with on the wire */
  localMac: string;
  /** the uplink NIC's own MAC (the NIC is an OVS port; nothing is addressed to it) */
  uplinkMac: string;
  pods: SimPodInfo[];
}

/** Everything static about a simulated cluster; runtime state lives in ClusterSim. */
export interface ClusterModel {
  state: ClusterState;
  underlayCIDR: string;
  external: Station;
  nodes: NodeModel[];
}

function underlayOf(dps: NodeDataplane[], cidr?: string): string {
  if (cidr) {
    const c = parseCidr(cidr);
    return `${numToIp(c.addr)}/${c.len}`;
  }
  return `${numToIp(parseCidr(`${dps[0].mainIP}/24`).addr)}/24`;
}

function externalStation(dps: NodeDataplane[], underlay: string, ip?: string): Station {
  const c = parseCidr(underlay);
  if (!ip) {
    const used = new Set(dps.flatMap((d) => d.nodeIPs));
    const size = 2 ** (32 - c.len);
    for (let k = 100; k < size - 1 && !ip; k++) {
      const cand = numToIp(c.addr + k);
      if (!used.has(cand)) ip = cand;
    }
    if (!ip) throw new Error(`no free address for the external client in ${underlay}`);
  }
  return stationFor(ip, c.len);
}

function stationFor(ip: string, prefix: number): Station {
  return {
    name: `external:${ip}`,
    ip,
    mac: macFromIp(STATION_MAC_PREFIX, ip),
    prefix,
  };
}

export function nodeModel(
  state: ClusterState,
  dp: NodeDataplane,
  underlayPrefix: number,
  program?: CompiledNode,
): NodeModel {
  const plan = buildHostPlan(state, dp);
  const compiled = program ?? compileNode(state, dp);
  const localMac = macFromIp(LOCAL_MAC_PREFIX, dp.mainIP);
  const podPrefix = parseCidr(dp.podCIDR).len;
  const host = hostFromPlan(plan, [
    {
      name: dp.bridge,
      port: 'LOCAL',
      mac: localMac,
      addresses: dp.nodeIPs.map((ip) => `${ip}/${underlayPrefix}`),
    },
    {
      name: dp.gatewayInterface,
      port: dp.gatewayPort,
      mac: dp.gatewayMAC,
      addresses: [`${dp.gatewayIP}/${podPrefix}`],
    },
  ]);
  return {
    name: dp.nodeName,
    dp,
    plan,
    compiled,
    program: compileProgram(compiled),
    host,
    localMac,
    uplinkMac: macFromIp(UPLINK_MAC_PREFIX, dp.mainIP),
    pods: dp.localPods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      ip: p.ip,
      mac: p.mac,
      ofport: p.ofport,
      prefix: podPrefix,
      gateway: dp.gatewayIP,
    })),
  };
}

export function buildClusterModel(
  state: ClusterState,
  config: SvcflowConfig,
  opts: ClusterSimOptions = {},
): ClusterModel {
  const names = state.nodes.map((n) => n.name).sort();
  if (names.length === 0) throw new Error('the cluster has no nodes');
  const dps = names.map((n) => resolveNode(state, config, n));
  const underlayCIDR = underlayOf(dps, opts.underlayCIDR);
  const u = parseCidr(underlayCIDR);
  for (const dp of dps)
    for (const ip of dp.nodeIPs)
      if ((ipToNum(ip) & u.mask) >>> 0 !== u.addr)
        throw new Error(`node address ${ip} is outside the underlay ${underlayCIDR}`);
  return {
    state,
    underlayCIDR,
    external: externalStation(dps, underlayCIDR, opts.externalIP),
    nodes: dps.map((dp) => nodeModel(state, dp, u.len)),
  };
}

/** The same cluster with one node's pipeline replaced (already indexed). */
export function withProgram(
  model: ClusterModel,
  node: string,
  program: CompiledProgram,
): ClusterModel {
  return {
    ...model,
    nodes: model.nodes.map((n) => (n.name === node ? { ...n, program } : n)),
  };
}

/** Who a place is, in the names lab paths use: `ns/name`, `host:NODE`, `external:IP`. */
export function serverName(model: ClusterModel, place: Place): string {
  if (place.kind === 'host') return `host:${place.node}`;
  if (place.kind === 'station') return place.name;
  const pod = model.nodes.find((n) => n.name === place.node)?.pods.find((p) => p.ip === place.ip);
  return pod ? `${pod.namespace}/${pod.name}` : `pod ${place.ip}`;
}

/** Addresses that belong to a server name (a pod's IP, a node's IPs). */
export function serverAddresses(model: ClusterModel, name: string): string[] {
  if (name.startsWith('host:')) {
    const n = model.nodes.find((x) => `host:${x.name}` === name);
    return n ? n.dp.nodeIPs : [];
  }
  if (name.startsWith('external:')) return [name.slice('external:'.length)];
  for (const n of model.nodes)
    for (const p of n.pods) if (`${p.namespace}/${p.name}` === name) return [p.ip];
  return [];
}

/** The endpoint IP a select-group bucket loads into EndpointIP, if any. */
export function bucketEndpoint(group: Group, bucket: number): string | undefined {
  for (const a of group.buckets[bucket]?.actions ?? [])
    if (
      a.kind === 'set' &&
      a.field.kind === 'reg' &&
      a.field.slice.reg === EndpointIP.slice.reg &&
      a.field.slice.start === EndpointIP.slice.start &&
      a.field.slice.end === EndpointIP.slice.end
    )
      return numToIp(Number(a.value) >>> 0);
  return undefined;
}

/** A chooseBucket that sends every group to the bucket of one of these endpoint IPs. */
export function forceEndpoint(ips: readonly string[]): NonNullable<SimOptions['chooseBucket']> {
  const want = new Set(ips);
  return (_id, n, _s, group) => {
    for (let i = 0; i < n; i++) {
      const ip = bucketEndpoint(group, i);
      if (ip && want.has(ip)) return i;
    }
    return undefined;
  };
}

/** A running cluster: fresh conntrack (OVS and host) and empty ARP caches after reset(). */
export class ClusterSim {
  network!: Network;

  constructor(readonly model: ClusterModel) {
    this.reset();
  }

  reset(): void {
    const stations = [this.model.external];
    this.network = new Network(
      this.model.nodes.map((n) => ({
        name: n.name,
        program: n.program,
        host: new Host(n.host, new Conntrack()),
        conntrack: new Conntrack(),
        uplinkPort: n.dp.uplinkPort,
        uplinkMac: n.localMac,
        wireIPs: n.dp.nodeIPs,
        pods: n.pods,
      })),
      stations,
      { arp: true },
    );
  }

  node(name: string): NodeModel {
    const n = this.model.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  /** The station for an outside address on the underlay (created on first use). */
  station(ip: string): Place {
    const name = `external:${ip}`;
    if (!this.network.station(name)) {
      const u = parseCidr(this.model.underlayCIDR);
      if ((ipToNum(ip) & u.mask) >>> 0 !== u.addr)
        throw new Error(`${ip} is not on the underlay ${this.model.underlayCIDR}`);
      this.network.addStation(stationFor(ip, u.len));
    }
    return { kind: 'station', name };
  }

  /**
   * A sender: `pod:NS/NAME`, `host:NODE`, `external:IP`, or an IP (a pod's, a node's, or an
   * outside address on the underlay).
   */
  place(spec: string): Place {
    if (spec.startsWith('pod:')) {
      const key = spec.slice(4);
      for (const n of this.model.nodes)
        for (const p of n.pods)
          if (`${p.namespace}/${p.name}` === key) return { kind: 'pod', node: n.name, ip: p.ip };
      throw new Error(`no pod ${key} on any node`);
    }
    if (spec.startsWith('host:')) return { kind: 'host', node: this.node(spec.slice(5)).name };
    if (spec.startsWith('external:')) return this.station(spec.slice(9));
    ipToNum(spec);
    for (const n of this.model.nodes) {
      const p = n.pods.find((x) => x.ip === spec);
      if (p) return { kind: 'pod', node: n.name, ip: p.ip };
      if (n.dp.nodeIPs.includes(spec)) return { kind: 'host', node: n.name };
    }
    return this.station(spec);
  }

  /** The address a sender's packets to `dst` carry (hosts pick one as Linux does). */
  sourceAddress(from: Place, dst: string): string {
    if (from.kind === 'pod') return from.ip;
    if (from.kind === 'station') return this.network.station(from.name)!.ip;
    const src = this.network.node(from.node).host.routing.sourceTo(dst);
    if (!src) throw new Error(`host ${from.node} has no route to ${dst}`);
    return src;
  }

  send(from: Place, packet: Packet, opts: SendOptions = {}): Journey {
    return this.network.send(from, packet, opts);
  }
}

/**
 * A destination: `IP:PORT[/PROTO]`, `service:NS/NAME[:PORT]` (the first ClusterIP; PORT is a
 * port name or number, default the first port) or `nodeport:NODE/NS/NAME[:PORT]` (the node's
 * first NodePort address).
 */
export function parseDestination(model: ClusterModel, spec: string): Destination {
  const svcPort = (ref: string) => {
    const [key, portRef] = ref.split(':');
    const svc = model.state.services.find((s) => `${s.namespace}/${s.name}` === key);
    if (!svc) throw new Error(`no Service ${key}`);
    const port =
      portRef === undefined
        ? svc.ports[0]
        : svc.ports.find((p) => p.name === portRef || String(p.port) === portRef);
    if (!port) throw new Error(`Service ${key} has no port ${portRef ?? ''}`);
    if (port.protocol === 'SCTP') throw new Error('SCTP is not simulated end to end');
    return { svc, port };
  };
  if (spec.startsWith('service:')) {
    const { svc, port } = svcPort(spec.slice(8));
    if (svc.clusterIPs.length === 0) throw new Error(`Service ${svc.name} has no ClusterIP`);
    return { ip: svc.clusterIPs[0], port: port.port, protocol: port.protocol as 'TCP' | 'UDP' };
  }
  if (spec.startsWith('nodeport:')) {
    const rest = spec.slice(9);
    const slash = rest.indexOf('/');
    const node = model.nodes.find((n) => n.name === rest.slice(0, slash));
    if (slash < 0 || !node) throw new Error(`nodeport:NODE/NS/NAME[:PORT]: no node in "${spec}"`);
    const { svc, port } = svcPort(rest.slice(slash + 1));
    if (port.nodePort === undefined) throw new Error(`Service ${svc.name} has no NodePort`);
    const ip = node.dp.nodePortIPs[0];
    if (!ip) throw new Error(`node ${node.name} answers no NodePorts`);
    return { ip, port: port.nodePort, protocol: port.protocol as 'TCP' | 'UDP' };
  }
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)(?:\/(tcp|udp))?$/i.exec(spec);
  if (!m) throw new Error(`bad destination "${spec}": IP:PORT/PROTO, service:…, or nodeport:…`);
  ipToNum(m[1]);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`bad port in "${spec}"`);
  return { ip: m[1], port, protocol: (m[3] ?? 'tcp').toUpperCase() as 'TCP' | 'UDP' };
}
