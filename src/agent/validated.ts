// Validation kept per object, so a sync costs what changed rather than what exists. Pods and
// Nodes are validated one by one; EndpointSlices with the Nodes (their endpoints are checked
// against the nodes' pod CIDRs), all again when a Node changes; Services all together whenever
// one changes (NodePort and ClusterIP clashes are cluster-wide). The assembled state is what
// validateObjects gives for the whole store.

import { validateObjects } from '../cluster/validate.js';
import type {
  ClusterState,
  EndpointSliceInfo,
  NodeInfo,
  PodInfo,
  Rejection,
  ServiceInfo,
} from '../model/types.js';
import type { RawObject } from './source.js';
import type { ObjectStore } from './store.js';

interface Cached<T> {
  info?: T;
  rejections: Rejection[];
}

export interface ValidatedUpdate {
  state: ClusterState;
  rejections: Rejection[];
  /** Nodes, Pods or this node's endpoints changed: resolve the data plane again */
  dataplaneInputs: boolean;
  /** some Service changed (the host plan depends on Services) */
  services: boolean;
}

const kindOf = (key: string) => key.slice(0, key.indexOf('/'));
const sliceKey = (namespace: string | undefined, name: string) =>
  `EndpointSlice/${namespace ?? 'default'}/${name}`;

export class ValidatedState {
  private readonly nodes = new Map<string, Cached<NodeInfo>>();
  private readonly pods = new Map<string, Cached<PodInfo>>();
  private readonly slices = new Map<string, Cached<EndpointSliceInfo>>();
  private services: { list: ServiceInfo[]; rejections: Rejection[] } = {
    list: [],
    rejections: [],
  };
  private first = true;
  /** slices by "namespace/service", kept as slices change (a Service's slices without a scan) */
  private readonly bySvc = new Map<string, Map<string, EndpointSliceInfo>>();
  /** assembled lists, rebuilt only when their kind changed (and only when read) */
  private lists: { nodes?: NodeInfo[]; pods?: PodInfo[]; slices?: EndpointSliceInfo[] } = {};
  private rejections?: Rejection[];
  private nodeRejections?: Rejection[];
  private podRejections?: Rejection[];
  /** slices with rejections: listing them must not scan every slice */
  private readonly sliceRejections = new Map<string, Rejection[]>();

  constructor(private readonly nodeName: string) {}

  update(store: ObjectStore, changed: Set<string>): ValidatedUpdate {
    const keys = this.first
      ? new Set([
          ...store.keysOf('Node'),
          ...store.keysOf('Pod'),
          ...store.keysOf('Service'),
          ...store.keysOf('EndpointSlice'),
        ])
      : changed;
    const first = this.first;
    this.first = false;
    let nodes = first;
    let pods = first;
    let services = first;
    const sliceKeys: string[] = [];
    for (const k of keys) {
      const kind = kindOf(k);
      if (kind === 'Node') {
        nodes = true;
        one(this.nodes, k, store.get(k), (s) => s.nodes[0]);
      } else if (kind === 'Pod') {
        pods = true;
        one(this.pods, k, store.get(k), (s) => s.pods[0]);
      } else if (kind === 'Service') services = true;
      else if (kind === 'EndpointSlice') sliceKeys.push(k);
    }

    const nodeRaw = [...store.keysOf('Node')].map((k) => store.get(k)!);
    let localEndpoints = false;
    if (nodes) {
      for (const k of [...this.slices.keys()]) this.dropSlice(k);
      const raws = [...store.keysOf('EndpointSlice')].map((k) => store.get(k)!);
      this.fillSlices(validateObjects([...nodeRaw, ...raws]));
    } else {
      for (const k of sliceKeys) {
        const before = this.localSignature(this.slices.get(k)?.info);
        this.dropSlice(k);
        const obj = store.get(k);
        if (obj) this.fillSlices(validateObjects([...nodeRaw, obj]), k);
        if (before !== this.localSignature(this.slices.get(k)?.info)) localEndpoints = true;
      }
    }
    if (services) {
      const r = validateObjects([...store.keysOf('Service')].map((k) => store.get(k)!));
      this.services = { list: r.state.services, rejections: r.rejections };
    }

    // an endpoint change must not cost a pass over every object: lists are built when read
    const slicesChanged = nodes || sliceKeys.length > 0;
    if (nodes) this.lists.nodes = this.nodeRejections = undefined;
    if (pods) this.lists.pods = this.podRejections = undefined;
    if (slicesChanged) this.lists.slices = undefined;
    if (nodes || pods || services || slicesChanged) this.rejections = undefined;
    const lists = this.lists;
    const caches = { nodes: this.nodes, pods: this.pods, slices: this.slices };
    const state: ClusterState = {
      get nodes() {
        return (lists.nodes ??= infos(caches.nodes));
      },
      get pods() {
        return (lists.pods ??= infos(caches.pods));
      },
      services: this.services.list,
      get endpointSlices() {
        return (lists.slices ??= infos(caches.slices));
      },
    };
    this.rejections ??= [
      ...(this.nodeRejections ??= rejectionsOf(this.nodes)),
      ...(this.podRejections ??= rejectionsOf(this.pods)),
      ...this.services.rejections,
      ...[...this.sliceRejections.values()].flat(),
    ];
    return {
      state,
      rejections: this.rejections,
      dataplaneInputs: nodes || pods || localEndpoints,
      services,
    };
  }

  /** One Service's valid slices ("namespace/name"). */
  slicesOf(svc: string): EndpointSliceInfo[] {
    const m = this.bySvc.get(svc);
    return m ? [...m.values()] : [];
  }

  private dropSlice(k: string): void {
    const info = this.slices.get(k)?.info;
    this.slices.delete(k);
    this.sliceRejections.delete(k);
    if (!info) return;
    const svc = `${info.namespace}/${info.serviceName}`;
    const m = this.bySvc.get(svc);
    m?.delete(k);
    if (m?.size === 0) this.bySvc.delete(svc);
  }

  /** Slice results by store key; `only` marks the key a single-slice run belongs to. */
  private fillSlices(r: { state: ClusterState; rejections: Rejection[] }, only?: string): void {
    for (const s of r.state.endpointSlices) {
      const k = sliceKey(s.namespace, s.name);
      this.slices.set(k, { info: s, rejections: [] });
      const svc = `${s.namespace}/${s.serviceName}`;
      const m = this.bySvc.get(svc) ?? new Map<string, EndpointSliceInfo>();
      m.set(k, s);
      this.bySvc.set(svc, m);
    }
    for (const x of r.rejections) {
      if (x.kind !== 'EndpointSlice') continue;
      const k = only ?? sliceKey(x.namespace, x.name);
      const c = this.slices.get(k) ?? { rejections: [] };
      c.rejections.push(x);
      this.sliceRejections.set(k, c.rejections);
      this.slices.set(k, c);
    }
  }

  /** What resolveNode takes from a slice: this node's endpoints (they may become local pods). */
  private localSignature(s: EndpointSliceInfo | undefined): string {
    if (!s) return '';
    const mine = s.endpoints.filter((e) => e.nodeName === this.nodeName);
    return mine.length
      ? `${s.namespace}|${mine.map((e) => `${e.ip}/${e.targetPod ?? ''}`).join(',')}`
      : '';
  }
}

function one<T>(
  cache: Map<string, Cached<T>>,
  key: string,
  obj: RawObject | undefined,
  pick: (s: ClusterState) => T | undefined,
): void {
  if (!obj) {
    cache.delete(key);
    return;
  }
  const r = validateObjects([obj]);
  cache.set(key, { info: pick(r.state), rejections: r.rejections });
}

function infos<T>(cache: Map<string, Cached<T>>): T[] {
  const out: T[] = [];
  for (const c of cache.values()) if (c.info) out.push(c.info);
  return out;
}

function rejectionsOf<T>(cache: Map<string, Cached<T>>): Rejection[] {
  const out: Rejection[] = [];
  for (const c of cache.values()) for (const r of c.rejections) out.push(r);
  return out;
}
