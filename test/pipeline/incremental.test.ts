import { test } from 'node:test';
import assert from 'node:assert/strict';
import { example } from '../helpers/example.js';
import { planServices, type ServicePortPlan } from '../../src/pipeline/services.js';
import {
  GroupIdAllocator,
  compileBase,
  compileEndpoint,
  compileService,
  sortFlows,
} from '../../src/pipeline/compile.js';
import { renderFlow, renderGroup } from '../../src/openflow/render.js';
import type { Flow, Group } from '../../src/openflow/types.js';
import type { Endpoint } from '../../src/pipeline/services.js';

test('base + per-Service units + shared endpoint flows == compileNode', () => {
  for (const node of ['node-a', 'node-b']) {
    const { state, dp, compiled } = example(node);
    const alloc = new GroupIdAllocator();
    const byService = new Map<string, ServicePortPlan[]>();
    for (const p of planServices(state, dp)) {
      const k = `${p.service.namespace}/${p.service.name}`;
      byService.set(k, [...(byService.get(k) ?? []), p]);
    }
    const flows: Flow[] = compileBase(dp);
    const groups: Group[] = [];
    const endpoints = new Map<number, Endpoint>();
    for (const plans of byService.values()) {
      const unit = compileService(plans, dp, alloc);
      flows.push(...unit.flows);
      groups.push(...unit.groups);
      for (const [k, e] of unit.endpoints) endpoints.set(k, e);
    }
    for (const e of endpoints.values()) flows.push(compileEndpoint(e, dp));
    const text = (fs: Flow[]) =>
      sortFlows([...fs])
        .map(renderFlow)
        .sort();
    assert.deepEqual(text(flows), text(compiled.flows));
    assert.deepEqual(groups.map(renderGroup).sort(), compiled.groups.map(renderGroup).sort());
  }
});

test('group ids are stable: recompiling one Service keeps its ids and leaves others alone', () => {
  const { state, dp } = example('node-a');
  const plans = planServices(state, dp);
  const web = plans.filter((p) => p.service.name === 'web');
  const udp = plans.filter((p) => p.service.name === 'echo-udp');
  const alloc = new GroupIdAllocator();
  const first = compileService(web, dp, alloc).groups.map((g) => g.id);
  const other = compileService(udp, dp, alloc).groups.map((g) => g.id);
  // Scale web down to one endpoint: same group id, one bucket.
  const shrunk = web.map((p) => ({
    ...p,
    cluster: p.cluster.slice(0, 1),
    local: p.local.slice(0, 1),
  }));
  const again = compileService(shrunk, dp, alloc).groups;
  assert.deepEqual(
    again.map((g) => g.id),
    first,
  );
  assert.equal(again[0].buckets.length, 1);
  assert.deepEqual(
    compileService(udp, dp, alloc).groups.map((g) => g.id),
    other,
  );
});
