// The Linux host backend's planning is pure: these run without root.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  canonicalNft,
  nftScript,
  parseNftJson,
  parseSysctl,
  parseTxChecksum,
  planHostCommands,
  ROUTE_PROTOCOL,
  type ObservedHostState,
} from '../../src/host/linux.js';
import type { HostPlan } from '../../src/host/types.js';
import { bundleText } from '../../src/ovs/ofctl.js';
import { validateSpec, type LabSpec } from '../../src/lab/topology.js';

const plan: HostPlan = {
  nodeName: 'n1',
  routes: [
    { destination: '10.96.0.0/12', device: 'gw0', via: '169.254.0.253', why: 'services' },
    { destination: '169.254.0.252/32', device: 'gw0', source: '10.244.1.1', why: 'vip' },
  ],
  neighbors: [{ device: 'gw0', ip: '169.254.0.253', mac: 'aa:bb:cc:dd:ee:ff', why: 'vip' }],
  interfaces: [
    {
      device: 'gw0',
      forwarding: true,
      rpFilter: 0,
      sendRedirects: false,
      routeLocalnet: true,
      txChecksumOffload: false,
      why: 'gateway',
    },
  ],
  nodePortRedirects: [
    {
      protocol: 'TCP',
      port: 30080,
      addresses: ['192.168.77.11', '127.0.0.1'],
      toIP: '169.254.0.252',
      snatIP: '10.244.1.1',
      device: 'gw0',
    },
  ],
};

const empty: ObservedHostState = {
  routes: [],
  neighbors: [],
  sysctls: {},
  txChecksum: {},
  nft: null,
};

// What the kernel reports once the plan is in place (shapes as printed by ip -json / nft -j).
const converged: ObservedHostState = {
  routes: [
    { dst: '10.96.0.0/12', gateway: '169.254.0.253', dev: 'gw0', protocol: ROUTE_PROTOCOL },
    { dst: '169.254.0.252', dev: 'gw0', prefsrc: '10.244.1.1', protocol: ROUTE_PROTOCOL },
  ],
  neighbors: [
    { dst: '169.254.0.253', dev: 'gw0', lladdr: 'aa:bb:cc:dd:ee:ff', state: ['PERMANENT'] },
  ],
  sysctls: {
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.conf.all.send_redirects': '0',
    'net.ipv4.conf.gw0.forwarding': '1',
    'net.ipv4.conf.gw0.rp_filter': '0',
    'net.ipv4.conf.gw0.send_redirects': '0',
    'net.ipv4.conf.gw0.route_localnet': '1',
  },
  txChecksum: { gw0: false },
  nft: canonicalNft(plan),
};

describe('linux host backend planning', () => {
  it('plans everything from an empty host, ip_forward first', () => {
    const cmds = planHostCommands(plan, empty).map((c) => c.argv.join(' '));
    assert.equal(cmds[0], 'sysctl -q -w net.ipv4.ip_forward=1');
    assert.ok(cmds.includes('sysctl -q -w net.ipv4.conf.all.rp_filter=0'));
    assert.ok(cmds.includes('ethtool -K gw0 tx off'));
    assert.ok(
      cmds.includes(
        `ip route replace 10.96.0.0/12 dev gw0 via 169.254.0.253 onlink proto ${ROUTE_PROTOCOL}`,
      ),
    );
    assert.ok(
      cmds.includes(
        `ip route replace 169.254.0.252/32 dev gw0 src 10.244.1.1 proto ${ROUTE_PROTOCOL}`,
      ),
    );
    assert.ok(
      cmds.includes(
        'ip neigh replace 169.254.0.253 lladdr aa:bb:cc:dd:ee:ff dev gw0 nud permanent',
      ),
    );
    assert.ok(cmds.includes('nft -f -'));
  });

  it('plans nothing once the host matches', () => {
    assert.deepEqual(planHostCommands(plan, converged), []);
  });

  it('changes only the difference and removes its own stale routes', () => {
    const drifted: ObservedHostState = structuredClone(converged);
    drifted.sysctls['net.ipv4.conf.gw0.rp_filter'] = '1';
    drifted.routes.push({ dst: '10.97.0.1', dev: 'gw0', protocol: ROUTE_PROTOCOL });
    drifted.routes.push({ dst: '10.98.0.0/16', dev: 'eth0', protocol: 'kernel' });
    const cmds = planHostCommands(plan, drifted).map((c) => c.argv.join(' '));
    assert.deepEqual(cmds, [
      'sysctl -q -w net.ipv4.conf.gw0.rp_filter=0',
      `ip route del 10.97.0.1/32 proto ${ROUTE_PROTOCOL} dev gw0`,
    ]);
  });

  it('never raises all.rp_filter, only lowers it', () => {
    const obs = structuredClone(converged);
    obs.sysctls['net.ipv4.conf.all.rp_filter'] = '0';
    const p = structuredClone(plan);
    p.interfaces[0].rpFilter = 2;
    obs.sysctls['net.ipv4.conf.gw0.rp_filter'] = '2';
    assert.deepEqual(planHostCommands(p, obs), []);
  });

  it('writes one nft script that replaces the table, and deletes it when unplanned', () => {
    const script = nftScript(plan);
    assert.match(script, /^table ip svcflow\ndelete table ip svcflow\n/);
    assert.match(
      script,
      /ip daddr \{ 127\.0\.0\.1, 192\.168\.77\.11 \} tcp dport 30080 dnat to 169\.254\.0\.252/,
    );
    assert.match(script, /oifname "gw0" ip daddr 169\.254\.0\.252 snat to 10\.244\.1\.1/);
    const none = { ...plan, nodePortRedirects: [] };
    const cmds = planHostCommands(none, converged).map((c) => c.argv.join(' '));
    assert.deepEqual(cmds, ['nft delete table ip svcflow']);
  });

  it('reads nft -j output into the same canonical form', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'ip', name: 'svcflow', handle: 1 } },
        {
          chain: {
            family: 'ip',
            table: 'svcflow',
            name: 'output',
            handle: 1,
            type: 'nat',
            hook: 'output',
            prio: -100,
            policy: 'accept',
          },
        },
        {
          chain: {
            family: 'ip',
            table: 'svcflow',
            name: 'postrouting',
            handle: 2,
            type: 'nat',
            hook: 'postrouting',
            prio: 100,
            policy: 'accept',
          },
        },
        {
          rule: {
            chain: 'output',
            expr: [
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: 'ip', field: 'daddr' } },
                  right: { set: ['192.168.77.11', '127.0.0.1'] },
                },
              },
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: 'tcp', field: 'dport' } },
                  right: 30080,
                },
              },
              { dnat: { addr: '169.254.0.252' } },
            ],
          },
        },
        {
          rule: {
            chain: 'postrouting',
            expr: [
              { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'gw0' } },
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: 'ip', field: 'daddr' } },
                  right: '169.254.0.252',
                },
              },
              { snat: { addr: '10.244.1.1' } },
            ],
          },
        },
      ],
    });
    assert.deepEqual(parseNftJson(json), canonicalNft(plan));
  });

  it('parses sysctl and ethtool output', () => {
    assert.deepEqual(parseSysctl('net.ipv4.ip_forward = 1\nnet.ipv4.conf.gw0.rp_filter = 2\n'), {
      'net.ipv4.ip_forward': '1',
      'net.ipv4.conf.gw0.rp_filter': '2',
    });
    assert.equal(
      parseTxChecksum('Features for gw0:\nrx-checksumming: on\ntx-checksumming: off\n'),
      false,
    );
    assert.equal(parseTxChecksum('tx-checksumming: on [fixed]'), true);
  });
});

describe('ofctl bundle text', () => {
  it('deletes everything, then adds groups before flows', () => {
    const text = bundleText(
      'group_id=1,type=select,bucket=actions=output:2\n',
      '# c\ntable=0,actions=group:1\n\n',
    );
    assert.equal(
      text,
      'flow delete\ngroup delete group_id=all\ngroup add group_id=1,type=select,bucket=actions=output:2\nflow add table=0,actions=group:1\n',
    );
  });
});

describe('lab spec validation', () => {
  const base: LabSpec = {
    prefix: 'svl',
    underlayCIDR: '192.168.77.0/24',
    external: { ip: '192.168.77.100' },
    nodes: [
      {
        nodeName: 'a',
        nodeIPs: ['192.168.77.11'],
        podCIDR: '10.244.1.0/24',
        gatewayIP: '10.244.1.1',
        gatewayMAC: '0a:58:0a:f4:01:01',
        gatewayPort: 2,
        uplinkPort: 3,
        localPods: [
          { namespace: 'd', name: 'p', ip: '10.244.1.5', mac: '0a:58:0a:f4:01:05', ofport: 5 },
        ],
      },
    ],
  };

  it('accepts a sound spec', () => validateSpec(base));

  it('rejects unsafe prefixes, foreign addresses and clashing ports', () => {
    assert.throws(() => validateSpec({ ...base, prefix: 'a-b' }), /prefix/);
    const bad = structuredClone(base);
    bad.nodes[0].nodeIPs = ['10.0.0.1'];
    bad.nodes[0].localPods[0].ofport = 2;
    bad.nodes[0].localPods[0].ip = '10.244.9.5';
    assert.throws(() => validateSpec(bad), /not in underlay[\s\S]*not in podCIDR[\s\S]*ofport 2/);
  });
});
