// Resolves each Service port to the endpoints it balances over, from this node's point of view.
import type { ClusterState, Protocol, ServiceInfo, ServicePort } from '../model/types.js';
import type { NodeDataplane } from '../config/types.js';

export type EndpointPlace = 'localPod' | 'localHost' | 'remote';

export interface Endpoint {
  ip: string;
  port: number;
  protocol: Protocol;
  nodeName?: string;
  place: EndpointPlace;
}

export interface ServicePortPlan {
  service: ServiceInfo;
  port: ServicePort;
  /** every usable endpoint */
  cluster: Endpoint[];
  /** endpoints on this node */
  local: Endpoint[];
}

const svcKey = (ns: string, name: string) => `${ns}/${name}`;

export function planServices(state: ClusterState, dp: NodeDataplane): ServicePortPlan[] {
  const slicesBySvc = new Map<string, typeof state.endpointSlices>();
  for (const s of state.endpointSlices) {
    const k = svcKey(s.namespace, s.serviceName);
    const list = slicesBySvc.get(k);
    if (list) list.push(s);
    else slicesBySvc.set(k, [s]);
  }
  const localPodIPs = new Set(dp.localPods.map((p) => p.ip));
  const localHostIPs = new Set(dp.nodeIPs);

  const plans: ServicePortPlan[] = [];
  const services = [...state.services].sort((a, b) =>
    svcKey(a.namespace, a.name).localeCompare(svcKey(b.namespace, b.name)),
  );
  for (const service of services) {
    if (service.type === 'ExternalName') continue;
    const slices = slicesBySvc.get(svcKey(service.namespace, service.name)) ?? [];
    for (const port of service.ports) {
      const candidates: { ep: Endpoint; ready: boolean; servingTerminating: boolean }[] = [];
      const seen = new Set<string>();
      for (const slice of slices) {
        const sp = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
        if (!sp) continue;
        for (const e of slice.endpoints) {
          const k = `${e.ip}:${sp.port}`;
          if (seen.has(k)) continue;
          seen.add(k);
          const place: EndpointPlace = localPodIPs.has(e.ip)
            ? 'localPod'
            : localHostIPs.has(e.ip)
              ? 'localHost'
              : 'remote';
          candidates.push({
            ep: { ip: e.ip, port: sp.port, protocol: port.protocol, nodeName: e.nodeName, place },
            ready: e.ready,
            servingTerminating: e.serving && e.terminating,
          });
        }
      }
      // Ready endpoints; only when there are none, the serving-but-terminating ones.
      const pick = (list: typeof candidates) => {
        const ready = list.filter((c) => c.ready).map((c) => c.ep);
        return ready.length > 0 ? ready : list.filter((c) => c.servingTerminating).map((c) => c.ep);
      };
      const byIp = (a: Endpoint, b: Endpoint) => a.ip.localeCompare(b.ip, 'en', { numeric: true }) || a.port - b.port;
      const cluster = pick(candidates).sort(byIp);
      const local = pick(candidates.filter((c) => c.ep.place !== 'remote')).sort(byIp);
      plans.push({ service, port, cluster, local });
    }
  }
  return plans;
}
