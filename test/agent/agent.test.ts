// The agent end to end without Kubernetes or OVS: a manifest directory as the source, an
// in-memory switch, a FakeClock for every timer. Checks convergence to compileNode, rejection
// of bad objects, retry after a failed bundle, replay after a wipe, health checks and metrics.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';

import { Agent } from '../../src/agent/agent.js';
import { HealthCheckServers } from '../../src/agent/healthcheck.js';
import { ManifestSource } from '../../src/agent/manifest.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import type { RawObject } from '../../src/agent/source.js';
import { FakeClock, settle } from './fake-clock.js';
import { FakeOfctl } from './fake-ofctl.js';
import {
  byName,
  exampleConfig,
  exampleObjects,
  reference,
  service,
  textOf,
  textOfDump,
  capturingLogger,
  freePort,
} from './helpers.js';

describe('agent with a manifest source', () => {
  let dir: string;
  let file: string;
  let objects: RawObject[];
  let hcPort: number;
  const clock = new FakeClock();
  const ofctl = new FakeOfctl();
  const metrics = new AgentMetrics();
  const { log, lines } = capturingLogger();
  let source: ManifestSource;
  let agent: Agent;
  const hc = new HealthCheckServers('127.0.0.1');

  const write = (objs: RawObject[]) =>
    writeFile(file, stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
  const installed = async () => textOfDump(await ofctl.dumpFlows(), await ofctl.dumpGroups());
  const expected = (round: number) => textOf(reference(objects, 'node-a', round));
  /** reload the manifest and let the runner's minInterval pass */
  const tick = async () => {
    await source.reload();
    await clock.advance(1000);
    await agent.runner.idle();
    await settle();
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'svcflow-agent-'));
    file = join(dir, 'cluster.yaml');
    hcPort = await freePort();
    objects = exampleObjects();
    const webLocal = objects.find(
      (o) => o.kind === 'Service' && (o.metadata as { name: string }).name === 'web-local',
    )!;
    (webLocal.spec as Record<string, unknown>).healthCheckNodePort = hcPort;
    await write(objects);
    source = new ManifestSource(dir, { clock, watch: false, pollMs: 5000, log });
    agent = new Agent({
      nodeName: 'node-a',
      config: exampleConfig(),
      source,
      ofctl,
      log,
      metrics,
      clock,
      healthChecks: hc,
      minSyncIntervalMs: 1000,
      maxSyncIntervalMs: 60_000,
      retry: { initialMs: 2000, maxMs: 16_000, jitter: 0 },
    });
  });
  after(async () => {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('first sync installs compileNode of the manifest, round 1', async () => {
    await agent.start();
    await clock.advance(0);
    await agent.runner.idle();
    assert.equal(agent.round, 1);
    assert.deepEqual(await installed(), expected(1));
    assert.equal(agent.health().healthy, true);
  });

  it('a changed manifest syncs only after minInterval and recompiles one Service', async () => {
    objects.push(service('api', '10.96.0.50', 80));
    await write(objects);
    await source.reload();
    await clock.advance(999);
    await agent.runner.idle();
    assert.notDeepEqual(await installed(), expected(1));
    await clock.advance(1);
    await agent.runner.idle();
    assert.deepEqual(await installed(), expected(1));
    assert.equal(agent.last?.recompiled, 1);
  });

  it('a manifest that does not parse keeps the last good state', async () => {
    const before = await installed();
    await writeFile(file, 'kind: List\nitems: [unclosed\n');
    await tick();
    assert.equal(source.failures, 1);
    assert.deepEqual(await installed(), before);
    assert.ok(lines.some((l) => l.msg === 'manifest unreadable; keeping the last good state'));
    await write(objects);
    await tick();
  });

  it('an invalid object is rejected alone, logged once and counted', async () => {
    objects.push(service('bad', '300.1.1.1', 80), service('good', '10.96.0.51', 81));
    await write(objects);
    await tick();
    await tick();
    const rejected = lines.filter((l) => l.msg === 'object rejected' && l.name === 'bad');
    assert.equal(rejected.length, 1);
    assert.match(
      await metrics.registry.metrics(),
      /svcflow_objects_rejected_total\{kind="Service"\} 1/,
    );
    objects = objects.filter((o) => (o.metadata as { name: string }).name !== 'bad');
    assert.deepEqual(await installed(), expected(1));
  });

  it('a failed bundle is retried with backoff and then converges', async () => {
    ofctl.failNext = 2;
    objects = objects.filter((o) => (o.metadata as { name: string }).name !== 'good');
    await write(objects);
    await tick(); // attempt 1 fails
    assert.notDeepEqual(await installed(), expected(1));
    await clock.advance(2000); // retry 1 fails
    await agent.runner.idle();
    await clock.advance(4000); // retry 2 succeeds
    await agent.runner.idle();
    assert.deepEqual(await installed(), expected(1));
    assert.match(await metrics.registry.metrics(), /svcflow_sync_errors_total\{stage="ovs"\} 2/);
  });

  it('a wiped switch (ovs-vswitchd restart) is detected and replayed', async () => {
    ofctl.wipe();
    await clock.advance(60_000); // the periodic reconcile
    await agent.runner.idle();
    assert.deepEqual(await installed(), expected(1));
    // and also on the next ordinary sync, without waiting for the periodic one
    ofctl.wipe();
    objects.push(service('late', '10.96.0.52', 82));
    await write(objects);
    await tick();
    assert.deepEqual(await installed(), expected(1));
    assert.equal(agent.last?.ovs?.replayed, true);
  });

  it('health-check node port answers with the local endpoint count', async () => {
    const res = await fetch(`http://127.0.0.1:${hcPort}/`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      service: { namespace: 'default', name: 'web-local' },
      localEndpoints: 1,
      serviceProxyHealthy: true,
    });
    // scale web-local's endpoints away: 503
    const sl = byName(objects, 'EndpointSlice', 'web-local-x1');
    objects = objects.filter(
      (o) =>
        o !==
        objects.find(
          (x) =>
            x.kind === 'EndpointSlice' && (x.metadata as { name: string }).name === 'web-local-x1',
        ),
    );
    await write(objects);
    await tick();
    const r2 = await fetch(`http://127.0.0.1:${hcPort}/`);
    assert.equal(r2.status, 503);
    assert.equal(((await r2.json()) as { localEndpoints: number }).localEndpoints, 0);
    objects.push(sl);
    await write(objects);
    await tick();
  });

  it('stop leaves every flow in place and closes the health-check servers', async () => {
    const before = await installed();
    await agent.stop();
    assert.deepEqual(await installed(), before);
    assert.deepEqual(hc.ports(), []);
    await clock.advance(120_000);
    assert.deepEqual(await installed(), before);
  });
});

describe('agent restart', () => {
  it('a second agent on the same switch installs round 2 next to round 1 and removes round 1', async () => {
    const ofctl = new FakeOfctl();
    const clock = new FakeClock();
    const { log } = capturingLogger();
    const objects = exampleObjects();
    const dir = await mkdtemp(join(tmpdir(), 'svcflow-agent-'));
    try {
      await writeFile(
        join(dir, 'c.yaml'),
        stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
      );
      for (const round of [1, 2]) {
        const agent = new Agent({
          nodeName: 'node-a',
          config: exampleConfig(),
          source: new ManifestSource(dir, { clock, watch: false }),
          ofctl,
          log,
          clock,
        });
        await agent.start();
        await clock.advance(0);
        await agent.runner.idle();
        assert.equal(agent.round, round);
        assert.deepEqual(
          textOfDump(await ofctl.dumpFlows(), await ofctl.dumpGroups()),
          textOf(reference(objects, 'node-a', round)),
        );
        await agent.stop();
      }
      // one bundle per start: the switch never went through an empty state
      assert.equal(ofctl.bundles.length, 2);
      assert.ok(!ofctl.bundles[1].includes('flow delete '));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
