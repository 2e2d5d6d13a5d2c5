// Resolves the node being compiled for: addresses, gateway, local pods and peers.
import { cidrContains, macFromIp, nthAddress, parseCidr, formatCidr } from '../net/ipv4.js';
import type { ClusterState } from '../model/types.js';
import type { LocalPod, NodeDataplane, PeerNode, SvcflowConfig } from './types.js';

/** The node cannot be compiled for (missing addresses or pod CIDR): one clear message. */
export class NodeError extends Error {}

export const POD_MAC_PREFIX = 0x58;
export const GATEWAY_MAC_PREFIX = 0x59;

/** The node to compile for: the named one, or the first by name. */
export function pickNodeName(state: ClusterState, name?: string): string {
  if (name) {
    if (!state.nodes.some((n) => n.name === name))
      throw new NodeError(
        `node ${name} is not in the cluster (nodes: ${state.nodes.map((n) => n.name).join(', ') || 'none'})`,
      );
    return name;
  }
  const names = state.nodes.map((n) => n.name).sort();
  if (names.length === 0)
    throw new NodeError('the cluster has no valid Node object to compile for');
  return names[0];
}

export function resolveNode(
  state: ClusterState,
  config: SvcflowConfig,
  nodeName: string,
): NodeDataplane {
  const node = state.nodes.find((n) => n.name === nodeName);
  if (!node) throw new NodeError(`node ${nodeName} is not in the cluster`);
  if (node.addresses.length === 0)
    throw new NodeError(`node ${nodeName} has no IPv4 InternalIP/ExternalIP address`);
  if (!node.podCIDR) throw new NodeError(`node ${nodeName} has no IPv4 spec.podCIDR`);
  const cidr = parseCidr(node.podCIDR)!;
  const overrides = config.nodes[nodeName] ?? {};
  const gatewayIP = nthAddress(cidr, 1);

  const nodePortIPs =
    config.nodePortAddresses.length === 0
      ? node.addresses
      : node.addresses.filter((ip, i) =>
          config.nodePortAddresses.some((a) =>
            a === 'primary' ? i === 0 : cidrContains(parseCidr(a)!, ip),
          ),
        );

  // Local pods: Pod objects on this node, plus endpoints on this node that no Pod object covers.
  const seen = new Map<string, { namespace: string; name: string; ip: string }>();
  for (const p of state.pods) {
    if (
      p.nodeName !== nodeName ||
      p.hostNetwork ||
      !p.ip ||
      !cidrContains(cidr, p.ip) ||
      p.ip === gatewayIP
    )
      continue;
    seen.set(p.ip, { namespace: p.namespace, name: p.name, ip: p.ip });
  }
  for (const s of state.endpointSlices)
    for (const e of s.endpoints) {
      if (
        e.nodeName !== nodeName ||
        seen.has(e.ip) ||
        !cidrContains(cidr, e.ip) ||
        e.ip === gatewayIP
      )
        continue;
      const [ns, name] = e.targetPod ? e.targetPod.split('/') : [s.namespace, `endpoint-${e.ip}`];
      seen.set(e.ip, { namespace: ns, name, ip: e.ip });
    }
  const byName = (p: { namespace: string; name: string; ip: string }) =>
    `${p.namespace}/${p.name}/${p.ip}`;
  const sorted = [...seen.values()]
    .map((p) => ({ p, k: byName(p) }))
    .sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0))
    .map((x) => x.p);
  const taken = new Set<number>([config.gatewayPort, config.uplinkPort]);
  for (const p of sorted) {
    const o = overrides.pods?.[`${p.namespace}/${p.name}`];
    if (o?.ofport) taken.add(o.ofport);
  }
  let next = config.firstPodPort;
  const localPods: LocalPod[] = sorted.map((p) => {
    const o = overrides.pods?.[`${p.namespace}/${p.name}`];
    let ofport = o?.ofport;
    if (ofport === undefined) {
      while (taken.has(next)) next++;
      ofport = next++;
    }
    return { ...p, ofport, mac: o?.mac ?? macFromIp(POD_MAC_PREFIX, p.ip) };
  });

  const peers: PeerNode[] = state.nodes
    .filter((n) => n.name !== nodeName && n.addresses.length > 0)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => ({ name: n.name, ip: n.addresses[0], addresses: n.addresses, podCIDR: n.podCIDR }));

  return {
    nodeName,
    bridge: config.bridge,
    gatewayInterface: config.gatewayInterface,
    uplinkInterface: config.uplinkInterface,
    mainIP: node.addresses[0],
    nodeIPs: node.addresses,
    nodePortIPs,
    podCIDR: formatCidr(cidr),
    gatewayIP,
    gatewayMAC: overrides.gatewayMAC ?? macFromIp(GATEWAY_MAC_PREFIX, gatewayIP),
    gatewayPort: config.gatewayPort,
    uplinkPort: config.uplinkPort,
    virtualIP: config.virtualIP,
    hostReturnIP: config.hostReturnIP,
    virtualMAC: config.virtualMAC,
    ctZones: { ...config.ctZones },
    snatPortRange: [...config.snatPortRange],
    localPods,
    peers,
  };
}
