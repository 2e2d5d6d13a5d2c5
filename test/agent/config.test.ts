// Agent settings (file + flags), OVSDB row parsing, and the /healthz + /metrics server.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { InputError } from '../../src/cluster/load.js';
import { parseAgentSettings } from '../../src/agent/config.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { startAgentServer, splitHostPort } from '../../src/agent/server.js';
import { parseInterfaces } from '../../src/ovs/ovsdb.js';

test('flags override the file; dataplane settings are validated; unknown keys are errors', () => {
  const doc = {
    kind: 'SvcflowAgentConfig',
    nodeName: 'from-file',
    host: 'none',
    dataplane: { bridge: 'br-file', gatewayPort: 7 },
    maxSyncIntervalMs: 5000,
  };
  const s = parseAgentSettings(doc, { node: 'from-flag', bridge: 'br-flag' }, {});
  assert.equal(s.nodeName, 'from-flag');
  assert.equal(s.dataplane.bridge, 'br-flag');
  assert.equal(s.dataplane.gatewayPort, 7);
  assert.equal(s.metricsAddress, '127.0.0.1:10256');
  assert.equal(s.maxSyncIntervalMs, 5000);
  assert.equal(parseAgentSettings({}, {}, { NODE_NAME: 'env-node' }).nodeName, 'env-node');
  assert.throws(() => parseAgentSettings({ bogus: 1 }), InputError);
  assert.throws(() => parseAgentSettings({ dataplane: { gatewayPort: 'x' } }), InputError);
  assert.throws(
    () => parseAgentSettings({ minSyncIntervalMs: 10, maxSyncIntervalMs: 5 }),
    InputError,
  );
  assert.throws(() => parseAgentSettings('text'), InputError);
});

test('OVSDB rows: pods parsed, non-pods ignored, bad rows reported, garbage rejected', () => {
  const text = JSON.stringify({
    headings: ['name', 'ofport', 'external_ids'],
    data: [
      ['gw0', 2, ['map', []]],
      [
        'p1',
        12,
        [
          'map',
          [
            ['svcflow-pod-namespace', 'ns'],
            ['svcflow-pod-name', 'b'],
            ['svcflow-pod-ip', '10.0.0.2'],
            ['svcflow-pod-mac', 'AA:00:00:00:00:02'],
          ],
        ],
      ],
      [
        'p0',
        11,
        [
          'map',
          [
            ['svcflow-pod-namespace', 'ns'],
            ['svcflow-pod-name', 'a'],
            ['svcflow-pod-ip', '10.0.0.1'],
            ['svcflow-pod-mac', 'aa:00:00:00:00:01'],
          ],
        ],
      ],
      [
        'p2',
        ['set', []],
        [
          'map',
          [
            ['svcflow-pod-namespace', 'ns'],
            ['svcflow-pod-name', 'c'],
            ['svcflow-pod-ip', '10.0.0.3'],
            ['svcflow-pod-mac', 'aa:00:00:00:00:03'],
          ],
        ],
      ],
      [
        'p3',
        14,
        [
          'map',
          [
            ['svcflow-pod-namespace', 'ns'],
            ['svcflow-pod-name', 'd'],
            ['svcflow-pod-ip', '10.0.0.999'],
            ['svcflow-pod-mac', 'aa:00:00:00:00:04'],
          ],
        ],
      ],
      'not a row',
    ],
  });
  const { pods, problems } = parseInterfaces(text);
  assert.deepEqual(
    pods.map((p) => [p.name, p.ofport, p.mac]),
    [
      ['a', 11, 'aa:00:00:00:00:01'],
      ['b', 12, 'aa:00:00:00:00:02'],
    ],
  );
  assert.deepEqual(
    problems.map((p) => p.iface),
    ['p2', 'p3'],
  );
  assert.throws(
    () => parseInterfaces('ovs-vsctl: unix:/x: database connection failed'),
    /not JSON/,
  );
  assert.throws(() => parseInterfaces('{}'), /headings/);
});

test('/healthz follows the agent; /metrics is Prometheus text', async () => {
  let healthy = false;
  const metrics = new AgentMetrics();
  metrics.flows.set(42);
  const srv = await startAgentServer('127.0.0.1:0', metrics, {
    health: () => ({ healthy, lastUpdated: healthy ? 0 : undefined, now: 1000 }),
  });
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 503);
    healthy = true;
    const r = await fetch(`${base}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      lastUpdated: '1970-01-01T00:00:00.000Z',
      currentTime: '1970-01-01T00:00:01.000Z',
    });
    assert.match(await (await fetch(`${base}/metrics`)).text(), /svcflow_flows_installed 42/);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  } finally {
    await srv.close();
  }
  assert.deepEqual(splitHostPort('10256'), { host: '127.0.0.1', port: 10256 });
  assert.deepEqual(splitHostPort('[::1]:9'), { host: '::1', port: 9 });
  assert.throws(() => splitHostPort('x:99999'));
});
