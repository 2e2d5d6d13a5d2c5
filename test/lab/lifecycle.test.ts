// Lab lifecycle: `up` failing halfway leaves nothing behind, `down` kills exactly the recorded
// pids and removes every prefixed namespace, and leftovers from a crashed run are cleaned.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { run } from '../../src/lab/exec.js';
import { spawnEchoServer } from '../../src/lab/processes.js';
import { isAlive, labDir, readState } from '../../src/lab/state.js';
import { labDown, labNamespaces, labUp, type LabSpec } from '../../src/lab/topology.js';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { announceSkip, labSkipReason, teardown } from './helpers.js';

const PREFIX = 'svlf';

const spec: LabSpec = {
  prefix: PREFIX,
  underlayCIDR: '192.168.78.0/24',
  external: { ip: '192.168.78.100' },
  nodes: ['x', 'y'].map((n, i) => ({
    nodeName: n,
    nodeIPs: [`192.168.78.${11 + i}`],
    podCIDR: `10.245.${i + 1}.0/24`,
    gatewayIP: `10.245.${i + 1}.1`,
    gatewayMAC: `0a:58:0a:f5:0${i + 1}:01`,
    gatewayPort: 2,
    uplinkPort: 3,
    localPods: [
      {
        namespace: 'default',
        name: `p-${n}`,
        ip: `10.245.${i + 1}.11`,
        mac: `0a:58:0a:f5:0${i + 1}:0b`,
        ofport: 5,
      },
    ],
  })),
};

const skip = await labSkipReason();
if (skip) announceSkip(skip);

describe('lab lifecycle', { skip, timeout: 90_000 }, () => {
  after(async () => {
    await teardown(PREFIX);
  });

  it('cleans up everything when up fails halfway', async () => {
    const seen: number[] = [];
    await assert.rejects(
      labUp(spec, {
        afterNode: (node) => {
          seen.push(node.ovs.ovsdbPid ?? 0, node.ovs.vswitchdPid ?? 0);
          throw new Error('injected failure after the first node');
        },
      }),
      /lab up failed, cleaned up: injected failure/,
    );
    assert.equal(seen.length, 2);
    for (const pid of seen) assert.ok(pid > 0 && !isAlive(pid), `pid ${pid} still alive`);
    assert.deepEqual(await labNamespaces(PREFIX), []);
    assert.equal(existsSync(labDir(PREFIX)), false);
  });

  it('cleans up when a kernel step fails on the second node', async () => {
    const broken: LabSpec = structuredClone(spec);
    // a MAC the kernel refuses (multicast) passes our syntax check and fails at `ip link set`
    broken.nodes[1].localPods[0].mac = '01:00:5e:00:00:01';
    await assert.rejects(labUp(broken), /lab up failed, cleaned up/);
    assert.deepEqual(await labNamespaces(PREFIX), []);
    const ovs = await run(['pgrep', '-f', `/run/svcflow-lab/${PREFIX}/`], { allowFailure: true });
    assert.equal(ovs.stdout.trim(), '');
  });

  it('down kills exactly the recorded pids and removes every prefixed namespace', async () => {
    const lab = await labUp(spec);
    const echo = await spawnEchoServer(PREFIX, lab.nodes[0].pods[0].ns, {
      name: 'e',
      tcpPorts: [8080],
      udpPorts: [],
    });
    const state = await readState(PREFIX);
    const pids = state?.processes.map((p) => p.pid) ?? [];
    assert.equal(pids.length, 5);
    assert.ok(pids.includes(echo));
    for (const pid of pids) assert.ok(isAlive(pid));

    const report = await labDown(PREFIX);
    assert.deepEqual([...report.killed].sort(), [...pids].sort());
    assert.deepEqual(report.survivors, []);
    for (const pid of pids) assert.ok(!isAlive(pid), `pid ${pid} still alive`);
    assert.deepEqual(await labNamespaces(PREFIX), []);
    assert.equal(existsSync(labDir(PREFIX)), false);
  });

  it('up removes leftovers of a crashed run first, including unrecorded processes', async () => {
    await run(['ip', 'netns', 'add', `${PREFIX}-leftover`]);
    // a process nobody recorded, living in a prefixed namespace
    const sleeper = spawn('ip', ['netns', 'exec', `${PREFIX}-leftover`, 'sleep', '300'], {
      stdio: 'ignore',
    });
    await new Promise((r) => setTimeout(r, 300));
    const pids = (await run(['ip', 'netns', 'pids', `${PREFIX}-leftover`])).stdout
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    assert.equal(pids.length, 1);
    const lab = await labUp({ ...spec, nodes: spec.nodes.slice(0, 1) });
    assert.ok(!isAlive(pids[0]));
    assert.equal(sleeper.pid, pids[0]);
    assert.ok(!(await labNamespaces(PREFIX)).includes(`${PREFIX}-leftover`));
    assert.equal(lab.nodes.length, 1);
    await labDown(PREFIX);
  });

  it('never touches namespaces of another prefix', async () => {
    const other = `${PREFIX}x-keep`;
    await run(['ip', 'netns', 'add', other]);
    try {
      await labDown(PREFIX);
      const list = (await run(['ip', 'netns', 'list'])).stdout;
      assert.match(list, new RegExp(`^${other}\\b`, 'm'));
    } finally {
      await run(['ip', 'netns', 'del', other]);
    }
  });
});
