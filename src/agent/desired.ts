// The desired OpenFlow program, kept up to date incrementally. Node-wide flows come from
// compileBase; every Service is one unit from compileService, recompiled only when the Service,
// its EndpointSlices, a Node its endpoints live on, or the set of local pod IPs changes; the
// EndpointDnat flow of an endpoint is shared by every Service that uses it (refcounted).

import type { NodeDataplane } from '../config/types.js';
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
import type { Changes } from './store.js';

interface EndpointEntry {
  flow: Flow;
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
  private base: Flow[] = [];
  private readonly units = new Map<string, ServiceUnit>();
  private readonly endpoints = new Map<number, EndpointEntry>();
  /** node name → Services with an endpoint on it, as of the last update */
  private nodeIndex = new Map<string, Set<string>>();

  constructor(readonly round: number) {}

  get serviceCount(): number {
    return this.units.size;
  }

  update(state: ClusterState, dp: NodeDataplane, changes: Changes): UpdateStats {
    const opts = { round: this.round };
    const dirty = new Set(changes.services);
    let all = false;
    let base = false;

    const services = new Map<string, ServiceInfo>(state.services.map((s) => [svcKey(s), s]));
    let removed = 0;
    for (const k of [...this.units.keys()])
      if (!services.has(k)) {
        this.replaceUnit(k, undefined);
        this.alloc.releasePrefix(`${k}|`);
        removed++;
      }

    const dpKey = dpServiceKey(dp);
    const podsKey = JSON.stringify(dp.localPods);
    if (dpKey !== this.dpKey) {
      // addresses, zones or ports changed: every flow may differ
      all = true;
      base = true;
      this.endpoints.clear();
      this.units.clear();
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
    if (base) this.base = compileBase(dp, opts);
    this.dp = dp;
    this.dpKey = dpKey;
    this.podsKey = podsKey;

    const slicesBySvc = new Map<string, EndpointSliceInfo[]>();
    const nodeIndex = new Map<string, Set<string>>();
    for (const s of state.endpointSlices) {
      const k = `${s.namespace}/${s.serviceName}`;
      const list = slicesBySvc.get(k);
      if (list) list.push(s);
      else slicesBySvc.set(k, [s]);
      for (const e of s.endpoints)
        if (e.nodeName) {
          const set = nodeIndex.get(e.nodeName) ?? new Set<string>();
          set.add(k);
          nodeIndex.set(e.nodeName, set);
        }
    }
    for (const n of changes.nodes)
      for (const idx of [this.nodeIndex, nodeIndex]) for (const k of idx.get(n) ?? []) dirty.add(k);
    this.nodeIndex = nodeIndex;

    let recompiled = 0;
    for (const [k, svc] of services) {
      if (!all && !dirty.has(k) && this.units.has(k)) continue;
      const sub: ClusterState = {
        nodes: [],
        pods: [],
        services: [svc],
        endpointSlices: slicesBySvc.get(k) ?? [],
      };
      const unit = compileService(planServices(sub, dp), dp, this.alloc, opts);
      this.replaceUnit(k, unit);
      recompiled++;
    }
    return { recompiled, removed, base };
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

  private replaceUnit(key: string, unit: ServiceUnit | undefined): void {
    const old = this.units.get(key);
    // take the new references before dropping the old ones: shared endpoints stay put
    if (unit) {
      for (const [k, e] of unit.endpoints) this.ref(k, e);
      this.units.set(key, unit);
    } else this.units.delete(key);
    if (old) for (const k of old.endpoints.keys()) this.unref(k);
  }

  private ref(k: number, e: Endpoint): void {
    const entry = this.endpoints.get(k);
    if (entry) entry.refs++;
    else
      this.endpoints.set(k, { flow: compileEndpoint(e, this.dp!, { round: this.round }), refs: 1 });
  }

  private unref(k: number): void {
    const entry = this.endpoints.get(k);
    if (!entry) return;
    if (--entry.refs <= 0) this.endpoints.delete(k);
  }
}
