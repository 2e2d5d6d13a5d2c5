// Incremental compilation: after any sequence of events, the program equals compileNode of
// the final objects, and only the Services an event touches are recompiled.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { validateObjects } from '../../src/cluster/validate.js';
import { resolveNode } from '../../src/config/resolve.js';
import { DesiredProgram } from '../../src/agent/desired.js';
import { ObjectStore } from '../../src/agent/store.js';
import { KINDS, type RawObject, type SourceEvent } from '../../src/agent/source.js';
import {
  byName,
  exampleConfig,
  exampleObjects,
  reference,
  service,
  slice,
  textOf,
} from './helpers.js';

function harness(node = 'node-a', round = 3) {
  const store = new ObjectStore();
  const desired = new DesiredProgram(round);
  const config = exampleConfig();
  const step = (...events: SourceEvent[]) => {
    for (const e of events) store.apply(e);
    const { state, rejections } = validateObjects(store.objects());
    const dp = resolveNode(state, config, node);
    const stats = desired.update(state, dp, store.takeChanges());
    return { stats, rejections };
  };
  const check = () =>
    assert.deepEqual(textOf(desired.program()), textOf(reference(store.objects(), node, round)));
  return { store, desired, step, check };
}

const add = (object: RawObject): SourceEvent => ({ type: 'add', object });
const upd = (object: RawObject): SourceEvent => ({ type: 'update', object });
const del = (object: RawObject): SourceEvent => ({ type: 'delete', object });

test('initial snapshot compiles every Service and equals compileNode', () => {
  for (const node of ['node-a', 'node-b']) {
    const h = harness(node);
    const { stats } = h.step({ type: 'snapshot', kinds: KINDS, objects: exampleObjects() });
    assert.equal(stats.recompiled, 6);
    h.check();
  }
});

test('events recompile only the Services they touch', () => {
  const h = harness();
  const objects = exampleObjects();
  h.step({ type: 'snapshot', kinds: KINDS, objects });

  // a new Service with its slice: one unit
  let r = h.step(
    add(service('api', '10.96.0.50', 80)),
    add(slice('api-1', 'api', [{ ip: '10.244.2.10', node: 'node-b' }])),
  );
  assert.equal(r.stats.recompiled, 1);
  h.check();

  // scale web: its slice gains an endpoint
  const web = byName(objects, 'EndpointSlice', 'web-x1');
  (web.endpoints as unknown[]).push({
    addresses: ['10.244.2.99'],
    conditions: { ready: true },
    nodeName: 'node-b',
  });
  r = h.step(upd(web));
  assert.equal(r.stats.recompiled, 1);
  h.check();

  // an update that changes nothing recompiles nothing
  r = h.step(upd(structuredClone(web)));
  assert.equal(r.stats.recompiled, 0);

  // delete a Service: its unit goes, nothing else is compiled
  r = h.step(del(byName(objects, 'Service', 'echo-udp')));
  assert.equal(r.stats.removed, 1);
  assert.equal(r.stats.recompiled, 0);
  h.check();

  // a peer Node changing recompiles the Services with endpoints on it
  const nodeB = byName(objects, 'Node', 'node-b');
  (nodeB.metadata as Record<string, unknown>).labels = { changed: 'yes' };
  r = h.step(upd(nodeB));
  assert.ok(r.stats.recompiled >= 1 && r.stats.recompiled < 6, `recompiled ${r.stats.recompiled}`);
  h.check();
});

test('endpoint flows are shared: deleting one of two Services keeps the endpoint', () => {
  const h = harness();
  h.step({ type: 'snapshot', kinds: KINDS, objects: exampleObjects() });
  // api shares web's endpoint 10.244.2.10:8080
  h.step(
    add(service('api', '10.96.0.50', 80)),
    add(slice('api-1', 'api', [{ ip: '10.244.2.10', node: 'node-b' }])),
  );
  h.check();
  h.step(del(service('api', '10.96.0.50', 80)));
  h.check();
  const dnat = textOf(h.desired.program()).flows.filter((f) =>
    f.includes('nat(dst=10.244.2.10:8080)'),
  );
  assert.equal(dnat.length, 1);
});

test('an invalid object is rejected alone; the rest still syncs', () => {
  const h = harness();
  h.step({ type: 'snapshot', kinds: KINDS, objects: exampleObjects() });
  const bad = service('broken', 'not-an-ip', 80);
  const r = h.step(
    add(bad),
    add(service('fine', '10.96.0.51', 81)),
    add({ kind: 'Service', metadata: 42 }),
  );
  assert.equal(r.rejections.filter((x) => x.name === 'broken').length, 1);
  assert.equal(h.store.unidentified, 1);
  h.check();
  assert.ok(textOf(h.desired.program()).flows.some((f) => f.includes('10.96.0.51')));
});

test('clash resolution: deleting the owner of a NodePort lets the other Service in', () => {
  const h = harness();
  h.step({ type: 'snapshot', kinds: KINDS, objects: exampleObjects() });
  const clash = service('zzz', '10.96.0.60', 80, {
    type: 'NodePort',
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }],
  });
  let r = h.step(add(clash));
  assert.ok(r.rejections.some((x) => x.name === 'zzz'));
  h.check();
  r = h.step(del(byName(exampleObjects(), 'Service', 'web')));
  assert.equal(r.rejections.length, 0);
  h.check();
});

test('local pods changing (as OVSDB reports them) recompile the affected Services', () => {
  const store = new ObjectStore();
  const desired = new DesiredProgram(1);
  store.apply({ type: 'snapshot', kinds: KINDS, objects: exampleObjects() });
  const { state } = validateObjects(store.objects());
  const dp = resolveNode(state, exampleConfig(), 'node-a');
  desired.update(state, dp, store.takeChanges());
  // the pod web-a1 is gone from the bridge: its endpoint is no longer local
  const fewer = { ...dp, localPods: dp.localPods.filter((p) => p.ip !== '10.244.1.10') };
  const stats = desired.update(state, fewer, store.takeChanges());
  assert.ok(stats.base);
  assert.ok(stats.recompiled >= 1 && stats.recompiled < 6);
  assert.deepEqual(
    textOf(desired.program()),
    textOf(
      reference(store.objects(), 'node-a', 1, (d) => ({
        ...d,
        localPods: d.localPods.filter((p) => p.ip !== '10.244.1.10'),
      })),
    ),
  );
});
