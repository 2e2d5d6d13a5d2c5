// Turns raw Kubernetes objects into validated ClusterState. Each bad object is reported with
// kind/namespace/name/field and a reason, and skipped; everything else still compiles.
import { cidrContains, isIPv4, parseCidr } from '../net/ipv4.js';
import type {
  ClusterState,
  EndpointAddress,
  EndpointSliceInfo,
  NodeInfo,
  PodInfo,
  Protocol,
  Rejection,
  ServiceInfo,
  ServicePort,
} from '../model/types.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_PORTS = 100;
const MAX_ENDPOINTS_PER_SLICE = 1000;
const DEFAULT_AFFINITY_SECONDS = 10800;

/** Thrown inside one object's validation; caught per object. */
class Invalid extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

function fail(field: string, reason: string): never {
  throw new Invalid(field, reason);
}

function str(o: Obj, key: string, field: string, required = true): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) fail(field, 'is required');
    return undefined;
  }
  if (typeof v !== 'string') fail(field, `must be a string, got ${typeof v}`);
  return v;
}

function port(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    fail(field, `must be an integer port 1-65535, got ${JSON.stringify(v)}`);
  return v;
}

function protocol(v: unknown, field: string): Protocol {
  if (v === undefined || v === null) return 'TCP';
  if (v === 'TCP' || v === 'UDP' || v === 'SCTP') return v;
  fail(field, `must be TCP, UDP or SCTP, got ${JSON.stringify(v)}`);
}

function meta(o: Obj, namespaced: boolean): { name: string; namespace?: string } {
  const m = o.metadata;
  if (!isObj(m)) fail('metadata', 'is required');
  const name = str(m, 'name', 'metadata.name')!;
  if (name.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name))
    fail('metadata.name', `is not a valid DNS name: ${JSON.stringify(name)}`);
  if (!namespaced) return { name };
  const namespace = str(m, 'namespace', 'metadata.namespace', false) ?? 'default';
  if (!DNS_LABEL.test(namespace) || namespace.length > 63)
    fail('metadata.namespace', `is not a valid namespace: ${JSON.stringify(namespace)}`);
  return { name, namespace };
}

function arr(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(field, 'must be a list');
  return v;
}

function parseNode(o: Obj): NodeInfo {
  const { name } = meta(o, false);
  const spec = isObj(o.spec) ? o.spec : {};
  const status = isObj(o.status) ? o.status : {};
  const internal: string[] = [];
  const external: string[] = [];
  arr(status.addresses, 'status.addresses').forEach((a, i) => {
    if (!isObj(a)) fail(`status.addresses[${i}]`, 'must be an object');
    if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') return;
    const ip = a.address;
    if (typeof ip === 'string' && ip.includes(':')) return; // IPv6: not handled by this pipeline
    if (!isIPv4(ip))
      fail(`status.addresses[${i}].address`, `is not an IPv4 address: ${JSON.stringify(ip)}`);
    (a.type === 'InternalIP' ? internal : external).push(ip);
  });
  let podCIDR: string | undefined;
  const cidrs = [spec.podCIDR, ...arr(spec.podCIDRs, 'spec.podCIDRs')].filter(
    (c) => typeof c === 'string' && !c.includes(':'),
  );
  if (cidrs.length > 0) {
    if (!parseCidr(cidrs[0]))
      fail('spec.podCIDR', `is not an IPv4 CIDR: ${JSON.stringify(cidrs[0])}`);
    podCIDR = cidrs[0] as string;
  }
  const addresses = [...new Set([...internal, ...external])];
  return { name, addresses, podCIDR };
}

function parsePod(o: Obj): PodInfo {
  const { name, namespace } = meta(o, true);
  const spec = isObj(o.spec) ? o.spec : {};
  const status = isObj(o.status) ? o.status : {};
  const ip = status.podIP;
  if (ip !== undefined && ip !== null && ip !== '' && !isIPv4(ip) && !String(ip).includes(':'))
    fail('status.podIP', `is not an IP address: ${JSON.stringify(ip)}`);
  const m = o.metadata as Obj;
  const labels = isObj(m.labels) ? (m.labels as Record<string, string>) : {};
  return {
    namespace: namespace!,
    name,
    nodeName: typeof spec.nodeName === 'string' ? spec.nodeName : undefined,
    ip: isIPv4(ip) ? ip : undefined,
    hostNetwork: spec.hostNetwork === true,
    labels,
  };
}

function parseService(o: Obj): ServiceInfo {
  const { name, namespace } = meta(o, true);
  if (!DNS_LABEL.test(name) || name.length > 63)
    fail('metadata.name', `is not a valid Service name (DNS label): ${JSON.stringify(name)}`);
  const spec = o.spec;
  if (!isObj(spec)) fail('spec', 'is required');
  const type = (str(spec, 'type', 'spec.type', false) ?? 'ClusterIP') as ServiceInfo['type'];
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type))
    fail('spec.type', `unknown Service type ${JSON.stringify(type)}`);

  const ipList = arr(spec.clusterIPs, 'spec.clusterIPs');
  const ips = ipList.length > 0 ? ipList : spec.clusterIP !== undefined ? [spec.clusterIP] : [];
  const clusterIPs: string[] = [];
  ips.forEach((ip, i) => {
    if (ip === 'None' || ip === '') return;
    if (typeof ip === 'string' && ip.includes(':')) return; // IPv6 family: not handled
    if (!isIPv4(ip)) fail(`spec.clusterIPs[${i}]`, `is not an IP address: ${JSON.stringify(ip)}`);
    clusterIPs.push(ip);
  });

  const rawPorts = arr(spec.ports, 'spec.ports');
  if (rawPorts.length > MAX_PORTS)
    fail('spec.ports', `has ${rawPorts.length} ports, at most ${MAX_PORTS}`);
  const ports: ServicePort[] = [];
  const seenNames = new Set<string>();
  const seenPorts = new Set<string>();
  const seenNodePorts = new Set<string>();
  rawPorts.forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    if (!isObj(p)) fail(f, 'must be an object');
    const pname = str(p, 'name', `${f}.name`, false) ?? '';
    if (pname === '' && rawPorts.length > 1)
      fail(`${f}.name`, 'is required when a Service has several ports');
    if (pname !== '' && (!PORT_NAME.test(pname) || pname.length > 63))
      fail(`${f}.name`, `is not a valid port name: ${JSON.stringify(pname)}`);
    if (seenNames.has(pname)) fail(`${f}.name`, `duplicate port name ${JSON.stringify(pname)}`);
    seenNames.add(pname);
    const proto = protocol(p.protocol, `${f}.protocol`);
    const num = port(p.port, `${f}.port`);
    if (seenPorts.has(`${proto}/${num}`)) fail(`${f}.port`, `duplicate port ${proto}/${num}`);
    seenPorts.add(`${proto}/${num}`);
    let targetPort: number | string = num;
    if (p.targetPort !== undefined && p.targetPort !== null) {
      if (typeof p.targetPort === 'string' && !/^\d+$/.test(p.targetPort)) {
        if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.targetPort) || p.targetPort.length > 15)
          fail(`${f}.targetPort`, `is not a valid port name: ${JSON.stringify(p.targetPort)}`);
        targetPort = p.targetPort;
      } else
        targetPort = port(
          typeof p.targetPort === 'string' ? Number(p.targetPort) : p.targetPort,
          `${f}.targetPort`,
        );
    }
    let nodePort: number | undefined;
    if (
      p.nodePort !== undefined &&
      p.nodePort !== null &&
      (type === 'NodePort' || type === 'LoadBalancer')
    ) {
      nodePort = port(p.nodePort, `${f}.nodePort`);
      if (seenNodePorts.has(`${proto}/${nodePort}`))
        fail(`${f}.nodePort`, `duplicate nodePort ${proto}/${nodePort}`);
      seenNodePorts.add(`${proto}/${nodePort}`);
    }
    ports.push({ name: pname, protocol: proto, port: num, targetPort, nodePort });
  });

  const policy = (key: string): 'Cluster' | 'Local' => {
    const v = spec[key];
    if (v === undefined || v === null || v === 'Cluster') return 'Cluster';
    if (v === 'Local') return 'Local';
    fail(`spec.${key}`, `must be Cluster or Local, got ${JSON.stringify(v)}`);
  };
  const externalTrafficPolicy = policy('externalTrafficPolicy');
  const internalTrafficPolicy = policy('internalTrafficPolicy');

  let affinityTimeoutSeconds: number | undefined;
  if (spec.sessionAffinity === 'ClientIP') {
    const cfg = isObj(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : {};
    const cip = isObj(cfg.clientIP) ? cfg.clientIP : {};
    const t = cip.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 86400)
      fail(
        'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
        `must be 1-86400, got ${JSON.stringify(t)}`,
      );
    affinityTimeoutSeconds = t;
  } else if (
    spec.sessionAffinity !== undefined &&
    spec.sessionAffinity !== null &&
    spec.sessionAffinity !== 'None'
  ) {
    fail(
      'spec.sessionAffinity',
      `must be None or ClientIP, got ${JSON.stringify(spec.sessionAffinity)}`,
    );
  }

  // Addresses outside the cluster that the Service claims; kept only to report them.
  const externalAddresses = [
    ...arr(spec.externalIPs, 'spec.externalIPs'),
    ...(isObj(o.status) && isObj(o.status.loadBalancer)
      ? arr(o.status.loadBalancer.ingress, 'status.loadBalancer.ingress').map((x) =>
          isObj(x) ? x.ip : undefined,
        )
      : []),
  ].filter((x): x is string => typeof x === 'string' && x !== '');

  return {
    namespace: namespace!,
    name,
    type,
    clusterIPs,
    ports,
    externalTrafficPolicy,
    internalTrafficPolicy,
    affinityTimeoutSeconds,
    externalAddresses: externalAddresses.length ? externalAddresses : undefined,
  };
}

function parseEndpointSlice(
  o: Obj,
  reject: (r: Omit<Rejection, 'kind' | 'name' | 'namespace'>) => void,
): EndpointSliceInfo | undefined {
  const { name, namespace } = meta(o, true);
  const m = o.metadata as Obj;
  const labels = isObj(m.labels) ? m.labels : {};
  const serviceName = labels['kubernetes.io/service-name'];
  if (typeof serviceName !== 'string' || serviceName === '')
    fail(
      'metadata.labels[kubernetes.io/service-name]',
      'is required to tie the slice to a Service',
    );
  const addressType = o.addressType ?? 'IPv4';
  if (addressType !== 'IPv4') return undefined; // other families are legitimate, just not ours
  const ports = arr(o.ports, 'ports').map((p, i) => {
    if (!isObj(p)) fail(`ports[${i}]`, 'must be an object');
    return {
      name: (str(p, 'name', `ports[${i}].name`, false) ?? '') as string,
      protocol: protocol(p.protocol, `ports[${i}].protocol`),
      port: port(p.port, `ports[${i}].port`),
    };
  });
  const raw = arr(o.endpoints, 'endpoints');
  if (raw.length > MAX_ENDPOINTS_PER_SLICE)
    fail('endpoints', `has ${raw.length} endpoints, at most ${MAX_ENDPOINTS_PER_SLICE}`);
  const endpoints: EndpointAddress[] = [];
  raw.forEach((e, i) => {
    // One bad endpoint is dropped alone; the slice's other endpoints still serve.
    const f = `endpoints[${i}]`;
    if (!isObj(e)) return reject({ field: f, reason: 'must be an object' });
    const addrs = arr(e.addresses, `${f}.addresses`);
    const ip = addrs[0];
    if (!isIPv4(ip))
      return reject({
        field: `${f}.addresses[0]`,
        reason: `is not an IPv4 address: ${JSON.stringify(ip)}`,
      });
    const c = isObj(e.conditions) ? e.conditions : {};
    const ready = c.ready !== false; // nil means ready
    const serving = c.serving === undefined || c.serving === null ? ready : c.serving === true;
    const terminating = c.terminating === true;
    const tr = isObj(e.targetRef) && e.targetRef.kind === 'Pod' ? e.targetRef : undefined;
    endpoints.push({
      ip,
      nodeName: typeof e.nodeName === 'string' ? e.nodeName : undefined,
      ready,
      serving,
      terminating,
      targetPod: tr ? `${tr.namespace ?? namespace}/${tr.name}` : undefined,
      index: i,
    });
  });
  return { namespace: namespace!, name, serviceName, ports, endpoints };
}

export interface ValidationResult {
  state: ClusterState;
  rejections: Rejection[];
}

/** Validate raw objects (any order). Unknown kinds are ignored. */
export function validateObjects(objects: Obj[]): ValidationResult {
  const state: ClusterState = { nodes: [], services: [], endpointSlices: [], pods: [] };
  const rejections: Rejection[] = [];
  for (const o of objects) {
    const kind = typeof o.kind === 'string' ? o.kind : '?';
    const m = isObj(o.metadata) ? o.metadata : {};
    const ident = {
      kind,
      namespace: typeof m.namespace === 'string' ? m.namespace : undefined,
      name: typeof m.name === 'string' ? m.name : '<unnamed>',
    };
    try {
      switch (kind) {
        case 'Node':
          state.nodes.push(parseNode(o));
          break;
        case 'Pod':
          state.pods.push(parsePod(o));
          break;
        case 'Service':
          state.services.push(parseService(o));
          break;
        case 'EndpointSlice': {
          const s = parseEndpointSlice(o, (r) =>
            rejections.push({ ...ident, namespace: ident.namespace ?? 'default', ...r }),
          );
          if (s) state.endpointSlices.push(s);
          break;
        }
        default:
          break;
      }
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      rejections.push({ ...ident, field: err.field, reason: err.message });
    }
  }
  crossCheck(state, rejections);
  return { state, rejections };
}

/** Checks that need several objects: duplicates, NodePort clashes, CIDR membership. */
function crossCheck(state: ClusterState, rejections: Rejection[]): void {
  const dedupe = <T extends { name: string; namespace?: string }>(
    items: T[],
    kind: string,
  ): T[] => {
    const seen = new Set<string>();
    return items.filter((it) => {
      const key = `${it.namespace ?? ''}/${it.name}`;
      if (seen.has(key)) {
        rejections.push({
          kind,
          namespace: it.namespace,
          name: it.name,
          field: 'metadata.name',
          reason: 'duplicate object; the first one is used',
        });
        return false;
      }
      seen.add(key);
      return true;
    });
  };
  state.nodes = dedupe(state.nodes, 'Node');
  state.pods = dedupe(state.pods, 'Pod');
  state.services = dedupe(state.services, 'Service');
  state.endpointSlices = dedupe(state.endpointSlices, 'EndpointSlice');

  // NodePorts and ClusterIP:port pairs are cluster-wide: the first Service (by namespace/name) keeps them.
  const owners = new Map<string, string>();
  const sorted = [...state.services].sort((a, b) => key(a).localeCompare(key(b)));
  const rejected = new Set<ServiceInfo>();
  for (const svc of sorted) {
    const claims: [string, string][] = [];
    svc.ports.forEach((p, i) => {
      if (p.nodePort !== undefined)
        claims.push([`nodePort ${p.protocol}/${p.nodePort}`, `spec.ports[${i}].nodePort`]);
    });
    // A ClusterIP belongs to one Service (its ARP answer and host route are per address).
    for (const ip of svc.clusterIPs) claims.push([`clusterIP ${ip}`, 'spec.clusterIP']);
    const clash = claims.find(([c]) => owners.has(c) && owners.get(c) !== key(svc));
    if (clash) {
      rejections.push({
        kind: 'Service',
        namespace: svc.namespace,
        name: svc.name,
        field: clash[1],
        reason: `${clash[0]} is already used by Service ${owners.get(clash[0])}`,
      });
      rejected.add(svc);
      continue;
    }
    for (const [c] of claims) owners.set(c, key(svc));
  }
  state.services = state.services.filter((s) => !rejected.has(s));

  // An endpoint on a known node must be one of its pods (pod CIDR) or the node itself.
  const nodes = new Map(state.nodes.map((n) => [n.name, n]));
  for (const slice of state.endpointSlices) {
    slice.endpoints = slice.endpoints.filter((e) => {
      const node = e.nodeName ? nodes.get(e.nodeName) : undefined;
      if (!node) return true;
      const cidr = node.podCIDR ? parseCidr(node.podCIDR) : undefined;
      if (node.addresses.includes(e.ip) || (cidr && cidrContains(cidr, e.ip)) || !cidr) return true;
      rejections.push({
        kind: 'EndpointSlice',
        namespace: slice.namespace,
        name: slice.name,
        field: `endpoints[${e.index ?? '?'}].addresses[0]`,
        reason: `${e.ip} is neither in node ${node.name}'s pod CIDR ${node.podCIDR} nor one of its addresses`,
      });
      return false;
    });
  }
}

const key = (s: { namespace: string; name: string }) => `${s.namespace}/${s.name}`;
