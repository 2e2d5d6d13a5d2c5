// Every traffic path of docs/pipeline.md, enumerated from a cluster: who sends, to which address,
// which servers may answer and which client address each of them must see. Pure: the lab runs
// the list (src/lab/cluster-lab.ts), tests can inspect it.

import type { LocalPod, NodeDataplane } from '../config/types.js';
import type { ClusterState } from '../model/types.js';
import { planServices, type Endpoint, type ServicePortPlan } from '../pipeline/services.js';

export type PathSource =
  | { kind: 'pod'; node: string; namespace: string; name: string; ip: string }
  | { kind: 'host'; node: string }
  | { kind: 'external'; ip: string };

/** A server allowed to answer, and the client address it must see. */
export interface PathServer {
  name: string;
  peer: string;
}

export interface LabPath {
  name: string;
  /** the section of docs/pipeline.md this path exercises */
  group: string;
  source: PathSource;
  protocol: 'TCP' | 'UDP';
  dest: { ip: string; port: number };
  /** every one of them must answer at least once (empty when the path must fail) */
  servers: PathServer[];
  /** why nothing may answer: the path passes only when the probe fails */
  mustFail?: string;
}

export interface EchoPorts {
  tcp: number[];
  udp: number[];
}

/** Echo server identities: pods by namespace/name, node hosts (hostNetwork endpoints) by node. */
export const podServerName = (p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`;
export const hostServerName = (node: string) => `host:${node}`;

/** Where each endpoint IP lives: a pod on some node, or a node's own address. */
interface Placement {
  server: string;
  node: string;
  hostNetwork: boolean;
}

function placements(dps: NodeDataplane[]): Map<string, Placement> {
  const out = new Map<string, Placement>();
  for (const dp of dps) {
    for (const ip of dp.nodeIPs)
      out.set(ip, { server: hostServerName(dp.nodeName), node: dp.nodeName, hostNetwork: true });
    for (const p of dp.localPods)
      out.set(p.ip, { server: podServerName(p), node: dp.nodeName, hostNetwork: false });
  }
  return out;
}

const sortNum = (xs: Iterable<number>) => [...new Set(xs)].sort((x, y) => x - y);

/**
 * Ports the echo servers listen on: every pod on the target ports of pod endpoints, every node
 * namespace on the target ports of hostNetwork endpoints (so any pod can serve pod → pod paths).
 */
export function echoPorts(
  state: ClusterState,
  dps: NodeDataplane[],
): { pods: EchoPorts; hosts: EchoPorts } {
  const where = placements(dps);
  const pods = { tcp: [] as number[], udp: [] as number[] };
  const hosts = { tcp: [] as number[], udp: [] as number[] };
  for (const plan of planServices(state, dps[0]))
    for (const e of plan.cluster) {
      const p = where.get(e.ip);
      if (!p) continue;
      const set = p.hostNetwork ? hosts : pods;
      (e.protocol === 'UDP' ? set.udp : set.tcp).push(e.port);
    }
  return {
    pods: { tcp: sortNum(pods.tcp), udp: sortNum(pods.udp) },
    hosts: { tcp: sortNum(hosts.tcp), udp: sortNum(hosts.udp) },
  };
}

/** A client pod per node: one that backs no Service (a Service's own endpoint would hairpin). */
export function clientPod(state: ClusterState, dp: NodeDataplane): LocalPod | undefined {
  const endpointIPs = new Set(state.endpointSlices.flatMap((s) => s.endpoints.map((e) => e.ip)));
  return dp.localPods.find((p) => !endpointIPs.has(p.ip)) ?? dp.localPods[0];
}

export function enumeratePaths(
  state: ClusterState,
  dps: NodeDataplane[],
  externalIP: string,
): LabPath[] {
  const where = placements(dps);
  const ports = echoPorts(state, dps);
  const podPort = ports.pods.tcp[0];
  const paths: LabPath[] = [];
  const byName = new Map(dps.map((d) => [d.nodeName, d]));
  const next = (i: number) => dps[(i + 1) % dps.length];

  const serversOf = (eps: Endpoint[], peer: (p: Placement) => string): PathServer[] => {
    const out = new Map<string, PathServer>();
    for (const e of eps) {
      const p = where.get(e.ip);
      if (!p) throw new Error(`endpoint ${e.ip} is neither a known pod nor a node address`);
      out.set(p.server, { name: p.server, peer: peer(p) });
    }
    return [...out.values()];
  };
  const add = (
    group: string,
    name: string,
    source: PathSource,
    protocol: 'TCP' | 'UDP',
    dest: { ip: string; port: number },
    servers: PathServer[],
    emptyReason: string,
  ) => {
    const path: LabPath = { name, group, source, protocol, dest, servers };
    if (servers.length === 0) path.mustFail = emptyReason;
    paths.push(path);
  };
  const srcName = (s: PathSource) =>
    s.kind === 'pod' ? `pod ${s.name}` : s.kind === 'host' ? `host ${s.node}` : 'external';
  const svcLabel = (plan: ServicePortPlan) =>
    `${plan.service.name}${plan.service.ports.length > 1 ? `:${plan.port.name || plan.port.port}` : ''}`;
  /** Gateway-IP clients: a hostNetwork endpoint on the entry node sees hostReturnIP (path 4). */
  const viaGateway = (entry: NodeDataplane) => (p: Placement) =>
    p.hostNetwork && p.node === entry.nodeName ? entry.hostReturnIP : entry.gatewayIP;

  for (const [i, dp] of dps.entries()) {
    const client = clientPod(state, dp);
    const pod: PathSource | undefined = client && {
      kind: 'pod',
      node: dp.nodeName,
      namespace: client.namespace,
      name: client.name,
      ip: client.ip,
    };
    const host: PathSource = { kind: 'host', node: dp.nodeName };
    const peerDp = next(i);
    const plans = planServices(state, dp);
    const local = dp.localPods.find((p) => p !== client);
    const remote = peerDp !== dp ? peerDp.localPods[0] : undefined;

    // 1, 2: pod → pod
    if (pod && podPort !== undefined) {
      if (local)
        add(
          '1 pod→pod',
          `${srcName(pod)} → ${local.name} (same node)`,
          pod,
          'TCP',
          { ip: local.ip, port: podPort },
          [{ name: podServerName(local), peer: client!.ip }],
          '',
        );
      if (remote)
        add(
          '2 pod→pod',
          `${srcName(pod)} → ${remote.name} (${peerDp.nodeName})`,
          pod,
          'TCP',
          { ip: remote.ip, port: podPort },
          [{ name: podServerName(remote), peer: client!.ip }],
          '',
        );
    }

    // 3, 4: pod and host → ClusterIP
    for (const plan of plans) {
      const svc = plan.service;
      if (svc.type === 'ExternalName' || plan.port.protocol === 'SCTP') continue;
      const eps = svc.internalTrafficPolicy === 'Local' ? plan.local : plan.cluster;
      for (const ip of svc.clusterIPs) {
        const dest = { ip, port: plan.port.port };
        const why = eps.length === 0 ? `${svc.name} has no endpoints` : '';
        if (pod)
          add(
            '3 pod→ClusterIP',
            `${srcName(pod)} → ${svcLabel(plan)} ClusterIP`,
            pod,
            plan.port.protocol,
            dest,
            serversOf(eps, () => client!.ip),
            why,
          );
        add(
          '4 host→ClusterIP',
          `${srcName(host)} → ${svcLabel(plan)} ClusterIP`,
          host,
          plan.port.protocol,
          dest,
          serversOf(eps, viaGateway(dp)),
          why,
        );
      }
    }

    // 3 (hairpin): a pod reaches a Service it serves itself. Answered by itself, it must see the
    // gateway IP (SNAT); answered by another endpoint, its own IP. One TCP and one UDP Service.
    for (const proto of ['TCP', 'UDP'] as const) {
      const hit = plans
        .filter((pl) => pl.port.protocol === proto && pl.service.clusterIPs.length > 0)
        .map((pl) => ({
          plan: pl,
          self: dp.localPods.find((p) =>
            (pl.service.internalTrafficPolicy === 'Local' ? pl.local : pl.cluster).some(
              (e) => e.ip === p.ip,
            ),
          ),
        }))
        .find((x) => x.self);
      if (!hit?.self) continue;
      const { plan, self } = hit;
      const eps = plan.service.internalTrafficPolicy === 'Local' ? plan.local : plan.cluster;
      const me: PathSource = {
        kind: 'pod',
        node: dp.nodeName,
        namespace: self.namespace,
        name: self.name,
        ip: self.ip,
      };
      add(
        '3 pod→ClusterIP',
        `${srcName(me)} → ${svcLabel(plan)} ClusterIP (hairpin)`,
        me,
        proto,
        { ip: plan.service.clusterIPs[0], port: plan.port.port },
        serversOf(eps, (p) => (p.server === podServerName(self) ? dp.gatewayIP : self.ip)),
        '',
      );
    }

    // 5: host ↔ pod (host → remote pod is also path 5's "remote node → local pod" on the peer)
    if (local && podPort !== undefined)
      add(
        '5 host↔pod',
        `${srcName(host)} → local pod ${local.name}`,
        host,
        'TCP',
        { ip: local.ip, port: podPort },
        [{ name: podServerName(local), peer: dp.gatewayIP }],
        '',
      );
    if (remote && podPort !== undefined)
      add(
        '5 host↔pod',
        `${srcName(host)} → remote pod ${remote.name} (${peerDp.nodeName})`,
        host,
        'TCP',
        { ip: remote.ip, port: podPort },
        [{ name: podServerName(remote), peer: dp.mainIP }],
        '',
      );

    // 6–9: NodePorts
    for (const plan of plans) {
      const np = plan.port.nodePort;
      if (np === undefined || plan.port.protocol === 'SCTP') continue;
      const svc = plan.service;
      const etpLocal = svc.externalTrafficPolicy === 'Local';
      // ETP Local with a hostNetwork endpoint: the host answers the client directly (a known
      // limit of the design), so there is nothing to hold the pipeline to.
      if (etpLocal && plan.local.some((e) => e.place === 'localHost')) continue;
      const proto = plan.port.protocol;
      const label = `${svcLabel(plan)} NodePort ${np}/${proto} ETP ${svc.externalTrafficPolicy}`;
      const outside = (clientIP: string) =>
        serversOf(etpLocal ? plan.local : plan.cluster, etpLocal ? () => clientIP : viaGateway(dp));
      const noLocal = etpLocal
        ? `ETP Local and no endpoint on ${dp.nodeName}`
        : `${svc.name} has no endpoints`;
      const group = etpLocal ? '7 external→NodePort Local' : '6 external→NodePort Cluster';
      for (const [k, ip] of dp.nodePortIPs.entries())
        add(
          group,
          `external → ${dp.nodeName} ${k === 0 ? 'main' : 'secondary'} ${ip}: ${label}`,
          { kind: 'external', ip: externalIP },
          proto,
          { ip, port: np },
          outside(externalIP),
          noLocal,
        );
      // 8: the host's own NodePorts, redirected into OVS; any endpoint (kube-proxy does the same)
      const fromHost = serversOf(plan.cluster, viaGateway(dp));
      const hostWhy = `${svc.name} has no endpoints`;
      if (dp.nodePortIPs.length)
        add(
          '8 host→NodePort',
          `${srcName(host)} → own ${dp.nodePortIPs[0]}: ${label}`,
          host,
          proto,
          { ip: dp.nodePortIPs[0], port: np },
          fromHost,
          hostWhy,
        );
      // 8: a pod → its own node's IP:NodePort, redirected by the host (PREROUTING DNAT, then
      // the same POSTROUTING SNAT to the gateway IP as the host's own NodePort traffic)
      if (pod && dp.nodePortIPs.length)
        add(
          '8 pod→own NodePort',
          `${srcName(pod)} → own node ${dp.nodePortIPs[0]}: ${label}`,
          pod,
          proto,
          { ip: dp.nodePortIPs[0], port: np },
          fromHost,
          hostWhy,
        );
      add(
        '8 host→NodePort',
        `${srcName(host)} → 127.0.0.1: ${label}`,
        host,
        proto,
        { ip: '127.0.0.1', port: np },
        fromHost,
        hostWhy,
      );
      // 9: another node's host is an outside client of this node
      if (peerDp !== dp && dp.nodePortIPs.length) {
        const from = byName.get(peerDp.nodeName)!;
        add(
          '9 node→NodePort',
          `host ${from.nodeName} → ${dp.nodeName} ${dp.nodePortIPs[0]}: ${label}`,
          { kind: 'host', node: from.nodeName },
          proto,
          { ip: dp.nodePortIPs[0], port: np },
          outside(from.mainIP),
          noLocal,
        );
      }
    }
  }
  return paths;
}
