// Real packets through a two-node lab: each node is a namespace with its own userspace OVS, the
// flow program is written here by hand, traffic is real TCP and UDP through the echo server.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { HostPlan } from '../../src/host/types.js';
import { applyHostPlan } from '../../src/host/linux.js';
import { run } from '../../src/lab/exec.js';
import { runProbes, spawnEchoServer } from '../../src/lab/processes.js';
import type { ProbeSpec } from '../../src/lab/probe.js';
import { isAlive, readState } from '../../src/lab/state.js';
import {
  findPod,
  labNamespaces,
  labUp,
  POD_EXTERNAL_IDS,
  type Lab,
  type LabSpec,
} from '../../src/lab/topology.js';
import { applyProgram, dumpFlows, dumpGroups } from '../../src/ovs/ofctl.js';
import { announceSkip, labSkipReason, teardown } from './helpers.js';

const PREFIX = 'svlt';

const spec: LabSpec = {
  prefix: PREFIX,
  underlayCIDR: '192.168.77.0/24',
  external: { ip: '192.168.77.100' },
  nodes: [
    {
      nodeName: 'a',
      nodeIPs: ['192.168.77.11', '192.168.77.21'],
      podCIDR: '10.244.1.0/24',
      gatewayIP: '10.244.1.1',
      gatewayMAC: '0a:58:0a:f4:01:01',
      gatewayPort: 2,
      uplinkPort: 3,
      localPods: [
        {
          namespace: 'default',
          name: 'web-1',
          ip: '10.244.1.11',
          mac: '0a:58:0a:f4:01:0b',
          ofport: 5,
        },
        {
          namespace: 'default',
          name: 'client',
          ip: '10.244.1.12',
          mac: '0a:58:0a:f4:01:0c',
          ofport: 6,
        },
      ],
    },
    {
      nodeName: 'b',
      nodeIPs: ['192.168.77.12'],
      podCIDR: '10.244.2.0/24',
      gatewayIP: '10.244.2.1',
      gatewayMAC: '0a:58:0a:f4:02:01',
      gatewayPort: 2,
      uplinkPort: 3,
      localPods: [
        {
          namespace: 'default',
          name: 'web-2',
          ip: '10.244.2.11',
          mac: '0a:58:0a:f4:02:0b',
          ofport: 5,
        },
      ],
    },
  ],
};

// Node a: the two pods talk through a select group (so groups must be loaded before flows),
// everything else is switched normally. Node b: plain learning switch.
const NODE_A_GROUPS = 'group_id=1,type=select,bucket=bucket_id:0,weight:100,actions=output:6';
const NODE_A_FLOWS = [
  'table=0,priority=200,in_port=5,dl_dst=0a:58:0a:f4:01:0c,actions=group:1',
  'table=0,priority=200,in_port=5,arp,arp_tpa=10.244.1.12,actions=group:1',
  'table=0,priority=200,in_port=6,dl_dst=0a:58:0a:f4:01:0b,actions=output:5',
  'table=0,priority=200,in_port=6,arp,arp_tpa=10.244.1.11,actions=output:5',
  'table=0,priority=0,actions=NORMAL',
].join('\n');
const NODE_B_FLOWS = 'table=0,priority=0,actions=NORMAL';

function hostPlan(node: 'a' | 'b'): HostPlan {
  const peer = node === 'a' ? spec.nodes[1] : spec.nodes[0];
  const self = node === 'a' ? spec.nodes[0] : spec.nodes[1];
  const plan: HostPlan = {
    nodeName: node,
    routes: [
      {
        destination: peer.podCIDR,
        device: 'br-int',
        via: peer.nodeIPs[0],
        why: 'peer pod CIDR via the peer node',
      },
    ],
    neighbors: [
      { device: 'gw0', ip: '169.254.0.253', mac: 'aa:bb:cc:dd:ee:ff', why: 'virtual service IP' },
    ],
    interfaces: [
      {
        device: 'gw0',
        forwarding: true,
        rpFilter: 0,
        sendRedirects: false,
        routeLocalnet: true,
        acceptLocal: true,
        txChecksumOffload: false,
        why: 'gateway',
      },
      { device: 'br-int', forwarding: true, rpFilter: 0, txChecksumOffload: false, why: 'LOCAL' },
    ],
    nodePortRedirects: [],
  };
  if (node === 'a') {
    plan.nodePortRedirects.push({
      protocol: 'TCP',
      port: 30080,
      addresses: [self.nodeIPs[0], '127.0.0.1'],
      toIP: self.localPods[0].ip,
      snatIP: self.gatewayIP,
      device: 'gw0',
    });
  }
  return plan;
}

const skip = await labSkipReason();
if (skip) announceSkip(skip);

describe('lab with two nodes', { skip, timeout: 120_000 }, () => {
  let lab: Lab;

  before(async () => {
    lab = await labUp(spec);
    const [a, b] = lab.nodes;
    await applyProgram(a.ovs.openflowTarget(), NODE_A_GROUPS, NODE_A_FLOWS);
    await applyProgram(b.ovs.openflowTarget(), '', NODE_B_FLOWS);
    const web1 = findPod(lab, 'default', 'web-1');
    const web2 = findPod(lab, 'default', 'web-2');
    await spawnEchoServer(PREFIX, web1.ns, {
      name: 'web-1',
      tcpPorts: [8080, 30080],
      udpPorts: [8081],
    });
    await spawnEchoServer(PREFIX, web2.ns, { name: 'web-2', tcpPorts: [8080], udpPorts: [8081] });
    await spawnEchoServer(PREFIX, a.ns, { name: 'node-a', tcpPorts: [9000], udpPorts: [] });
  });

  after(async () => {
    await teardown(PREFIX);
  });

  it('runs one ovsdb-server and ovs-vswitchd per node, inside the node namespace', async () => {
    for (const n of lab.nodes) {
      for (const pid of [n.ovs.ovsdbPid, n.ovs.vswitchdPid]) {
        assert.ok(pid && isAlive(pid));
        const r = await run(['ip', 'netns', 'identify', String(pid)]);
        assert.equal(r.stdout.trim(), n.ns);
      }
      const ports = await n.ovs.vsctl(['list-ports', 'br-int']);
      assert.ok(ports.stdout.includes('uplink0') && ports.stdout.includes('gw0'));
      const dp = await n.ovs.vsctl(['get', 'bridge', 'br-int', 'datapath_type', 'fail_mode']);
      assert.deepEqual(dp.stdout.trim().split('\n'), ['netdev', 'secure']);
    }
    const pids = (await readState(PREFIX))?.processes.map((p) => p.pid) ?? [];
    assert.ok(pids.length >= 4 + 3, `recorded pids: ${pids}`);
  });

  it('gives gateway, uplink and pod ports their ofports, MAC and external_ids', async () => {
    const a = lab.nodes[0];
    const of = async (dev: string) =>
      (await a.ovs.vsctl(['get', 'interface', dev, 'ofport'])).stdout.trim();
    assert.equal(await of('gw0'), '2');
    assert.equal(await of('uplink0'), '3');
    assert.equal(await of('veth-p5'), '5');
    const ids = (await a.ovs.vsctl(['get', 'interface', 'veth-p5', 'external_ids'])).stdout;
    assert.match(ids, new RegExp(`${POD_EXTERNAL_IDS.namespace}=default`));
    assert.match(ids, new RegExp(`${POD_EXTERNAL_IDS.name}=web-1`));
    assert.match(ids, new RegExp(`${POD_EXTERNAL_IDS.ip}="10.244.1.11"`));
    assert.match(ids, new RegExp(`${POD_EXTERNAL_IDS.mac}="0a:58:0a:f4:01:0b"`));
    const link = JSON.parse((await run(['ip', '-n', a.ns, '-json', 'link', 'show', 'gw0'])).stdout);
    assert.equal(link[0].address, '0a:58:0a:f4:01:01');
    const addrs = (await run(['ip', '-n', a.ns, '-4', '-o', 'addr', 'show', 'br-int'])).stdout;
    assert.match(addrs, /192\.168\.77\.11\/24/);
    assert.match(addrs, /192\.168\.77\.21\/24/);
  });

  it('loaded the program atomically: groups and flows read back', async () => {
    const t = lab.nodes[0].ovs.openflowTarget();
    assert.match(await dumpGroups(t), /group_id=1,type=select/);
    const flows = await dumpFlows(t);
    assert.match(flows, /in_port=5,dl_dst=0a:58:0a:f4:01:0c actions=group:1/);
    assert.equal(flows.trim().split('\n').length, 5);
  });

  it('carries TCP and UDP pod to pod on one node, through a select group', async () => {
    const client = findPod(lab, 'default', 'client');
    const specs: ProbeSpec[] = [
      { kind: 'tcp-who', host: '10.244.1.11', port: 8080 },
      { kind: 'tcp-bulk', host: '10.244.1.11', port: 8080, bytes: 1 << 20, timeoutMs: 10_000 },
      { kind: 'udp-who', host: '10.244.1.11', port: 8081 },
    ];
    const [who, bulk, udp] = await runProbes(client.ns, specs);
    assert.ok(who.ok, who.error);
    assert.equal(who.who?.server, 'web-1');
    assert.equal(who.who?.peer.split(':')[0], '10.244.1.12');
    assert.ok(bulk.ok, bulk.error);
    assert.equal(bulk.bytes, 1 << 20);
    assert.ok(udp.ok, udp.error);
    assert.equal(udp.replies?.length, 1);
    assert.equal(udp.who?.local, '10.244.1.11:8081');
  });

  it('applies the host plan, and a second apply changes nothing', async () => {
    for (const [i, n] of lab.nodes.entries()) {
      const plan = hostPlan(i === 0 ? 'a' : 'b');
      const first = await applyHostPlan(plan, { ns: n.ns });
      assert.ok(first.length > 0);
      const second = await applyHostPlan(plan, { ns: n.ns });
      assert.deepEqual(
        second.map((c) => c.argv.join(' ')),
        [],
      );
    }
  });

  it('routes pod to pod across nodes through both OVS instances and the underlay', async () => {
    const client = findPod(lab, 'default', 'client');
    const [who, bulk] = await runProbes(client.ns, [
      { kind: 'tcp-who', host: '10.244.2.11', port: 8080 },
      { kind: 'tcp-bulk', host: '10.244.2.11', port: 8080, bytes: 1 << 20, timeoutMs: 10_000 },
    ]);
    assert.ok(who.ok, who.error);
    assert.equal(who.who?.server, 'web-2');
    assert.ok(bulk.ok, bulk.error);
  });

  it('reaches the node from the external client via the uplink and LOCAL', async () => {
    const [who] = await runProbes(lab.externalNs, [
      { kind: 'tcp-who', host: '192.168.77.11', port: 9000 },
    ]);
    assert.ok(who.ok, who.error);
    assert.equal(who.who?.peer.split(':')[0], '192.168.77.100');
  });

  it('redirects host-originated NodePort traffic with the nft table (DNAT + SNAT)', async () => {
    const a = lab.nodes[0];
    const [viaNodeIP, viaLoopback] = await runProbes(a.ns, [
      { kind: 'tcp-who', host: '192.168.77.11', port: 30080 },
      { kind: 'tcp-who', host: '127.0.0.1', port: 30080 },
    ]);
    for (const r of [viaNodeIP, viaLoopback]) {
      assert.ok(r.ok, r.error);
      assert.equal(r.who?.server, 'web-1');
      assert.equal(r.who?.peer.split(':')[0], '10.244.1.1');
    }
  });

  it('leaves the root namespace without lab addresses', async () => {
    const root = (await run(['ip', '-4', '-o', 'addr'])).stdout;
    for (const ip of ['192.168.77.', '10.244.1.', '10.244.2.']) assert.ok(!root.includes(ip));
    assert.ok((await labNamespaces(PREFIX)).length >= 5);
  });
});
