// The host side of the paths, as data: routes, neighbours, interface switches and the
// host-originated NodePort redirect. Pure; backends in this folder apply it.
import type { NodeDataplane } from '../config/types.js';
import type { ClusterState } from '../model/types.js';
import type { HostPlan } from './types.js';

export function buildHostPlan(state: ClusterState, dp: NodeDataplane): HostPlan {
  const gw = dp.gatewayInterface;
  const routes: HostPlan['routes'] = [];
  for (const peer of dp.peers) {
    if (!peer.podCIDR) continue;
    routes.push({
      destination: peer.podCIDR,
      device: dp.bridge,
      via: peer.ip,
      why: `noEncap: pods of ${peer.name} are reached through that node's IP`,
    });
  }
  routes.push({
    destination: `${dp.virtualIP}/32`,
    device: gw,
    source: dp.gatewayIP,
    why: 'host → NodePort: redirected traffic enters OVS through the gateway',
  });
  routes.push({
    destination: `${dp.hostReturnIP}/32`,
    device: gw,
    source: dp.gatewayIP,
    why: 'replies of hostNetwork endpoints to gateway-IP clients go back into OVS',
  });
  const clusterIPs = [
    ...new Set(state.services.flatMap((s) => (s.type === 'ExternalName' ? [] : s.clusterIPs))),
  ].sort((x, y) => x.localeCompare(y, 'en', { numeric: true }));
  for (const ip of clusterIPs)
    routes.push({
      destination: `${ip}/32`,
      device: gw,
      source: dp.gatewayIP,
      why: 'host → ClusterIP: through the gateway, answered by the OVS ARP responder',
    });

  // The virtual IP and hostReturnIP are answered by the OVS ARP responder, like ClusterIPs.
  const neighbors: HostPlan['neighbors'] = [];

  const interfaces: HostPlan['interfaces'] = [
    {
      device: 'all',
      rpFilter: 0,
      sendRedirects: false,
      why: 'the effective rp_filter is the max of all and the device',
    },
    {
      device: gw,
      forwarding: true,
      acceptLocal: true,
      rpFilter: 0,
      sendRedirects: false,
      routeLocalnet: true,
      txChecksumOffload: false,
      why: 'forward gateway-IP-sourced traffic from OVS to peers; 127.0.0.1 NodePort redirect; NATed checksums',
    },
    {
      device: dp.bridge,
      forwarding: true,
      rpFilter: 0,
      sendRedirects: false,
      txChecksumOffload: false,
      why: 'IP forwarding on br-int (noEncap); no ICMP redirects; NATed checksums',
    },
    {
      device: dp.uplinkInterface,
      txChecksumOffload: false,
      why: 'NATed packets leave through the uplink',
    },
  ];

  const nodePortRedirects: HostPlan['nodePortRedirects'] = [];
  const seen = new Set<string>();
  for (const s of [...state.services].sort((x, y) =>
    `${x.namespace}/${x.name}`.localeCompare(`${y.namespace}/${y.name}`),
  ))
    for (const p of s.ports) {
      if (p.nodePort === undefined || seen.has(`${p.protocol}/${p.nodePort}`)) continue;
      seen.add(`${p.protocol}/${p.nodePort}`);
      nodePortRedirects.push({
        protocol: p.protocol,
        port: p.nodePort,
        addresses: [...dp.nodePortIPs, '127.0.0.1'],
        toIP: dp.virtualIP,
        snatIP: dp.gatewayIP,
        device: gw,
        forwarded: { device: gw, addresses: [...dp.nodePortIPs] },
      });
    }
  return { nodeName: dp.nodeName, routes, neighbors, interfaces, nodePortRedirects };
}
