// Resolves each Service port to the endpoints it balances over, from this node's point of view.
import type { ClusterState, Protocol, ServiceInfo, ServicePort } from '../model/types.js';
import type { NodeDataplane } from '../config/types.js';
import { ipToInt } from '../net/ipv4.js';

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
  const services = [...state.services].sort((a, b) => {
    const x = svcKey(a.namespace, a.name);
    const y = svcKey(b.namespace, b.name);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  for (const service of services) {
    if (service.type === 'ExternalName') continue;
    const slices = slicesBySvc.get(svcKey(service.namespace, service.name)) ?? [];
    for (const port of service.ports) {
      const ready: Endpoint[] = [];
      const fallback: Endpoint[] = []; // serving but terminating: used only when none is ready
      const seen = new Set<number>();
      for (const slice of slices) {
        const sp = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
        if (!sp) continue;
        for (const e of slice.endpoints) {
          const k = ipToInt(e.ip) * 65536 + sp.port;
          if (seen.has(k)) continue;
          seen.add(k);
          if (!e.ready && !(e.serving && e.terminating)) continue;
          const place: EndpointPlace = localPodIPs.has(e.ip)
            ? 'localPod'
            : localHostIPs.has(e.ip)
              ? 'localHost'
              : 'remote';
          const ep: Endpoint = {
            ip: e.ip,
            port: sp.port,
            protocol: port.protocol,
            nodeName: e.nodeName,
            place,
          };
          (e.ready ? ready : fallback).push(ep);
        }
      }
      const cluster = sortEndpoints(ready.length > 0 ? ready : fallback);
      // Local endpoints follow the same rule among themselves (kube-proxy does the same).
      const localReady = ready.filter((e) => e.place !== 'remote');
      const local =
        localReady.length > 0
          ? sortEndpoints(localReady)
          : sortEndpoints(fallback.filter((e) => e.place !== 'remote'));
      plans.push({ service, port, cluster, local });
    }
  }
  return plans;
}

/** By IP (numerically), then port; the key is computed once per endpoint, not per comparison. */
function sortEndpoints(eps: Endpoint[]): Endpoint[] {
  if (eps.length < 2) return eps;
  // Slices usually list endpoints in order already: check before sorting.
  let sorted = true;
  let prev = ipToInt(eps[0].ip) * 65536 + eps[0].port;
  for (let i = 1; i < eps.length && sorted; i++) {
    const k = ipToInt(eps[i].ip) * 65536 + eps[i].port;
    sorted = k >= prev;
    prev = k;
  }
  if (sorted) return eps;
  const keyed = eps.map((e) => ({ e, k: ipToInt(e.ip) * 65536 + e.port }));
  keyed.sort((x, y) => x.k - y.k);
  return keyed.map((x) => x.e);
}

/** Service settings the pipeline does not implement yet: reported, never silently ignored. */
export function unsupportedSettings(state: ClusterState): string[] {
  const notes: string[] = [];
  for (const s of state.services) {
    const id = `Service ${s.namespace}/${s.name}`;
    if (s.affinityTimeoutSeconds !== undefined)
      notes.push(
        `${id}: sessionAffinity ClientIP is not implemented; connections are balanced one by one`,
      );
    if (s.externalAddresses?.length)
      notes.push(
        `${id}: external IPs / load-balancer IPs (${s.externalAddresses.join(', ')}) are not programmed; use the NodePort`,
      );
  }
  return notes;
}
