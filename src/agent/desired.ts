// The desired OpenFlow program, kept up to date incrementally. Node-wide flows come from
// compileBase; every Service is one unit from compileService, recompiled only when the Service,
// its EndpointSlices, a Node its endpoints live on, or the set of local pod IPs changes; the
// EndpointDnat flow of an endpoint is shared by every Service that uses it (refcounted).

import type { LocalPod, NodeDataplane } from '../config/types.js';
import type { ClusterState, EndpointSliceInfo, ServiceInfo } from '../model/types.js';
import type { Flow, Group, OpenFlowProgram } from '../openflow/types.js';
import {
  GroupIdAllocator,
  compileBase,
  compileEndpoint,
  compileService,
  sortFlows,
  type ServiceUnit,
} from '../pipeline/compile.js';
import { planServices, type Endpoint } from '../pipeline/services.js';
import { flowKey, flowText, type DesiredView } from '../ovs/sync.js';
import type { Changes } from './store.js';

interface EndpointEntry {
  flow: Flow;
  key: string;
  refs: number;
}

export interface UpdateStats {
  /** Services compiled in this update */
  recompiled: number;
  /** Services dropped */
  removed: number;
  /** true when the node-wide flows were rebuilt */
  base: boolean;
}

const svcKey = (s: { namespace: string; name: string }) => `${s.namespace}/${s.name}`;

/** Everything in the data plane a Service unit depends on, except the local pods. */
function dpServiceKey(dp: NodeDataplane): string {
  return JSON.stringify({ ...dp, localPods: undefined, peers: undefined, nodeName: undefined });
}

export class DesiredProgram {
  private readonly alloc = new GroupIdAllocator();
  private dp?: NodeDataplane;
  private dpKey = '';
  private podsKey = '';
  /** local pods by IP: a Service's plan needs only the pods behind its own endpoints */
  private podsByIp = new Map<string, LocalPod>();
  private base: Flow[] = [];
  private readonly units = new Map<string, ServiceUnit>();
  /** Services by key, rebuilt only when validation hands over a different list */
  private services = new Map<string, ServiceInfo>();
  private serviceList?: ServiceInfo[];
  private readonly endpoints = new Map<number, EndpointEntry>();
  /** node name → Services with an endpoint on it, as of the last update */
  private nodeIndex = new Map<string, Set<string>>();
  private slicesBySvc = new Map<string, EndpointSliceInfo[]>();
  private svcNodes = new Map<string, Set<string>>();
  /**
   * The program keyed as the switch is compared (flowKey, group id), kept as units change, with
   * the keys touched since the last view: a sync then diffs those and nothing else.
   */
  private readonly flowIdx = new Map<string, Flow>();
  private readonly flowRefs = new Map<string, number>();
  private readonly groupIdx = new Map<number, Group>();
  private readonly unitKeys = new Map<string, string[]>();
  private baseKeys: string[] = [];
  private dirtyFlows = new Set<string>();
  private dirtyGroups = new Set<number>();
  /** the next view must be compared in full (first view, everything recompiled) */
  private full = true;

  constructor(readonly round: number) {}

  get serviceCount(): number {
    return this.units.size;
  }

  /**
   * Bring the program to `state`. `slicesOf` (kept by the caller as slices change) gives one
   * Service's slices without a pass over every slice; without it they are gathered from `state`.
   */
  update(
    state: ClusterState,
    dp: NodeDataplane,
    changes: Changes,
    slicesOf?: (svc: string) => EndpointSliceInfo[],
  ): UpdateStats {
    const opts = { round: this.round };
    const dirty = new Set(changes.services);
    let all = false;
    let base = false;

    // the same Service list as last time (validation reuses it): nothing added or removed
    let removed = 0;
    const servicesChanged = state.services !== this.serviceList;
    if (servicesChanged) {
      this.serviceList = state.services;
      this.services = new Map(state.services.map((s) => [svcKey(s), s]));
      for (const k of [...this.units.keys()])
        if (!this.services.has(k)) {
          this.replaceUnit(k, undefined);
          this.alloc.releasePrefix(`${k}|`);
          removed++;
        }
    }
    const services = this.services;

    // the same data-plane object as last time: nothing in it changed
    const dpKey = dp === this.dp ? this.dpKey : dpServiceKey(dp);
    const podsKey = dp === this.dp ? this.podsKey : JSON.stringify(dp.localPods);
    if (dpKey !== this.dpKey) {
      // addresses, zones or ports changed: every flow may differ
      all = true;
      base = true;
      this.endpoints.clear();
      this.units.clear();
      this.unitKeys.clear();
      this.flowIdx.clear();
      this.flowRefs.clear();
      this.groupIdx.clear();
      this.baseKeys = [];
      this.full = true;
    } else if (podsKey !== this.podsKey) {
      base = true;
      // an endpoint's place (local or remote) depends only on the local pod IPs
      const before = new Set(this.dp?.localPods.map((p) => p.ip));
      const after = new Set(dp.localPods.map((p) => p.ip));
      const moved = new Set([...before, ...after].filter((ip) => before.has(ip) !== after.has(ip)));
      if (moved.size > 0)
        for (const s of state.endpointSlices)
          if (s.endpoints.some((e) => moved.has(e.ip)))
            dirty.add(`${s.namespace}/${s.serviceName}`);
    }
    if (base) {
      this.base = compileBase(dp, opts);
      const keys = this.base.map((f) => this.addFlow(f));
      for (const k of this.baseKeys) this.dropFlow(k);
      this.baseKeys = keys;
    }
    if (dp !== this.dp) this.podsByIp = new Map(dp.localPods.map((p) => [p.ip, p]));
    this.dp = dp;
    this.dpKey = dpKey;
    this.podsKey = podsKey;

    // Slices by Service and the node index: rebuilt when nodes or pods changed (validation of
    // every slice may have moved), else patched for the changed Services only.
    const rebuild = all || base || changes.nodes.size > 0 || changes.pods || !this.svcNodes.size;
    // node changes always rebuild, so the old index is only consulted then (and not mutated)
    const before = this.nodeIndex;
    if (rebuild) {
      this.slicesBySvc = new Map();
      this.svcNodes = new Map();
      this.nodeIndex = new Map();
    }
    const index = (k: string, s: EndpointSliceInfo) => {
      const list = this.slicesBySvc.get(k);
      if (list) list.push(s);
      else this.slicesBySvc.set(k, [s]);
      const nodes = this.svcNodes.get(k) ?? new Set<string>();
      this.svcNodes.set(k, nodes);
      for (const e of s.endpoints)
        if (e.nodeName) {
          nodes.add(e.nodeName);
          const set = this.nodeIndex.get(e.nodeName) ?? new Set<string>();
          set.add(k);
          this.nodeIndex.set(e.nodeName, set);
        }
    };
    if (rebuild || !slicesOf) {
      const touched = rebuild ? undefined : changes.services;
      if (touched) for (const k of touched) this.unindex(k);
      for (const s of state.endpointSlices) {
        const k = `${s.namespace}/${s.serviceName}`;
        if (touched && !touched.has(k)) continue;
        index(k, s);
      }
    } else
      for (const k of changes.services) {
        this.unindex(k);
        for (const s of slicesOf(k)) index(k, s);
      }
    const slicesBySvc = this.slicesBySvc;
    for (const n of changes.nodes)
      for (const idx of [before, this.nodeIndex]) for (const k of idx.get(n) ?? []) dirty.add(k);

    let recompiled = 0;
    // every Service when everything changed; else the touched ones, and any new one without a unit
    const todo: Iterable<string> = all ? services.keys() : dirty;
    const compile = (k: string) => {
      const svc = services.get(k);
      if (!svc) return;
      const slices = slicesBySvc.get(k) ?? [];
      const sub: ClusterState = { nodes: [], pods: [], services: [svc], endpointSlices: slices };
      const unit = compileService(planServices(sub, this.planDp(slices)), dp, this.alloc, opts);
      this.replaceUnit(k, unit);
      recompiled++;
    };
    for (const k of todo) compile(k);
    if (!all && servicesChanged)
      for (const k of services.keys()) if (!this.units.has(k) && !dirty.has(k)) compile(k);
    return { recompiled, removed, base };
  }

  private unindex(k: string): void {
    this.slicesBySvc.delete(k);
    for (const n of this.svcNodes.get(k) ?? []) this.nodeIndex.get(n)?.delete(k);
    this.svcNodes.delete(k);
  }

  /**
   * The data plane as planServices sees it for one Service: only the local pods behind its
   * endpoints (planServices indexes every local pod it is given, once per call).
   */
  private planDp(slices: EndpointSliceInfo[]): NodeDataplane {
    const pods: LocalPod[] = [];
    for (const s of slices)
      for (const e of s.endpoints) {
        const p = this.podsByIp.get(e.ip);
        if (p) pods.push(p);
      }
    return { ...this.dp!, localPods: pods };
  }

  /** The whole program, in compileNode's order. */
  program(): OpenFlowProgram {
    const flows: Flow[] = [...this.base];
    const groups: Group[] = [];
    for (const u of this.units.values()) {
      for (const f of u.flows) flows.push(f);
      for (const g of u.groups) groups.push(g);
    }
    for (const e of this.endpoints.values()) flows.push(e.flow);
    return { flows: sortFlows(flows), groups: groups.sort((x, y) => x.id - y.id) };
  }

  /** The program as the switch sync wants it, and what changed since the previous view. */
  view(): DesiredView {
    const dirty = this.full ? undefined : { flows: this.dirtyFlows, groups: this.dirtyGroups };
    this.full = false;
    this.dirtyFlows = new Set();
    this.dirtyGroups = new Set();
    return { flows: this.flowIdx, groups: this.groupIdx, dirty };
  }

  private addFlow(f: Flow): string {
    const k = flowKey(f);
    // rendered while the flow is fresh in cache: bundles later only join the text
    flowText(f);
    this.flowIdx.set(k, f);
    this.flowRefs.set(k, (this.flowRefs.get(k) ?? 0) + 1);
    this.dirtyFlows.add(k);
    return k;
  }

  private dropFlow(k: string): void {
    const n = (this.flowRefs.get(k) ?? 0) - 1;
    if (n > 0) this.flowRefs.set(k, n);
    else {
      this.flowRefs.delete(k);
      this.flowIdx.delete(k);
    }
    this.dirtyFlows.add(k);
  }

  private replaceUnit(key: string, unit: ServiceUnit | undefined): void {
    const old = this.units.get(key);
    const oldKeys = this.unitKeys.get(key) ?? [];
    // take the new references before dropping the old ones: shared endpoints and flows stay put
    if (unit) {
      for (const [k, e] of unit.endpoints) this.ref(k, e);
      this.units.set(key, unit);
      this.unitKeys.set(
        key,
        unit.flows.map((f) => this.addFlow(f)),
      );
      for (const g of unit.groups) {
        this.groupIdx.set(g.id, g);
        this.dirtyGroups.add(g.id);
      }
    } else {
      this.units.delete(key);
      this.unitKeys.delete(key);
    }
    for (const k of oldKeys) this.dropFlow(k);
    if (old) {
      const kept = new Set(unit?.groups.map((g) => g.id));
      for (const g of old.groups)
        if (!kept.has(g.id)) {
          this.groupIdx.delete(g.id);
          this.dirtyGroups.add(g.id);
        }
      for (const k of old.endpoints.keys()) this.unref(k);
    }
  }

  private ref(k: number, e: Endpoint): void {
    const entry = this.endpoints.get(k);
    if (entry) entry.refs++;
    else {
      const flow = compileEndpoint(e, this.dp!, { round: this.round });
      this.endpoints.set(k, { flow, key: this.addFlow(flow), refs: 1 });
    }
  }

  private unref(k: number): void {
    const entry = this.endpoints.get(k);
    if (!entry) return;
    if (--entry.refs <= 0) {
      this.endpoints.delete(k);
      this.dropFlow(entry.key);
    }
  }
}
