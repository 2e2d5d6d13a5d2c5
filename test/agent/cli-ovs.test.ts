// `svcflow agent` as a process against a real private ovs-vswitchd: it installs the manifest's
// program, serves /healthz and /metrics, and on SIGTERM exits leaving every flow in place.
// Also reads local pods from that instance's OVSDB. Root and Open vSwitch needed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { EXAMPLE_CLUSTER, REPO_ROOT } from '../../src/cli/context.js';
import { run } from '../../src/lab/exec.js';
import { OvsInstance } from '../../src/lab/ovs-instance.js';
import { recordNamespace } from '../../src/lab/state.js';
import { readLocalPods } from '../../src/ovs/ovsdb.js';
import { ofctlRunner } from '../../src/ovs/sync.js';
import { announceSkip, labSkipReason, teardown } from '../lab/helpers.js';
import { exampleObjects, freePort, reference, textOf, textOfDump } from './helpers.js';

const PREFIX = 'svac';
const NS = `${PREFIX}-cli`;
const skip = await labSkipReason();
if (skip) announceSkip(skip);

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('svcflow agent process against real OVS', { skip, timeout: 120_000 }, () => {
  let ovs: OvsInstance;
  let dir: string;
  before(async () => {
    await teardown(PREFIX);
    await recordNamespace(PREFIX, NS);
    await run(['ip', 'netns', 'add', NS]);
    ovs = new OvsInstance({ prefix: PREFIX, node: 'cli', ns: NS });
    await ovs.start();
    await ovs.addBridge();
    dir = await mkdtemp(join(tmpdir(), 'svcflow-cli-'));
  });
  after(async () => {
    await teardown(PREFIX);
    await rm(dir, { recursive: true, force: true });
  });

  it('local pods come from OVSDB Interface external_ids', async () => {
    await ovs.addPort('p10', 10, [
      'type=internal',
      'external_ids:svcflow-pod-namespace=default',
      'external_ids:svcflow-pod-name=web-a1',
      'external_ids:svcflow-pod-ip=10.244.1.10',
      'external_ids:svcflow-pod-mac="0A:58:0A:F4:01:0A"',
    ]);
    await ovs.addPort('p11', 11, ['type=internal', 'external_ids:svcflow-pod-name=half']);
    const { pods, problems } = await readLocalPods({ command: ovs.vsctlArgv(), env: ovs.env });
    assert.deepEqual(pods, [
      {
        namespace: 'default',
        name: 'web-a1',
        ip: '10.244.1.10',
        mac: '0a:58:0a:f4:01:0a',
        ofport: 10,
      },
    ]);
    assert.deepEqual(
      problems.map((p) => p.iface),
      ['p11'],
    );
  });

  it('runs, serves health and metrics, and leaves flows on SIGTERM', async () => {
    const port = await freePort();
    const config = join(dir, 'agent.yaml');
    await writeFile(
      config,
      [
        'kind: SvcflowAgentConfig',
        'nodeName: node-a',
        'vsctl: []',
        'host: none',
        `metricsAddress: 127.0.0.1:${port}`,
        'healthCheckBindAddress: 127.0.0.1',
        'logLevel: warn',
      ].join('\n'),
    );
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'src/cli/main.ts'),
        'agent',
        '--config',
        config,
        '--manifest',
        EXAMPLE_CLUSTER,
        '--ofctl-target',
        ovs.ofctlTarget,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (b) => (output += b));
    child.stderr.on('data', (b) => (output += b));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor(
        'healthz 200',
        async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200,
      );
      const ofctl = ofctlRunner(ovs.openflowTarget());
      const installed = textOfDump(await ofctl.dumpFlows(), await ofctl.dumpGroups());
      assert.deepEqual(installed, textOf(reference(exampleObjects(), 'node-a', 1)));
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, new RegExp(`svcflow_flows_installed ${installed.flows.length}`));
      assert.match(metrics, /svcflow_sync_duration_seconds_count [1-9]/);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output);
      assert.deepEqual(textOfDump(await ofctl.dumpFlows(), await ofctl.dumpGroups()), installed);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
