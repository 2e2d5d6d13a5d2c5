import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flow } from '../../src/openflow/types.js';
import { Conntrack } from '../../src/sim/conntrack.js';
import { compileProgram } from '../../src/sim/interpreter.js';
import { Host, Network, Routing, type HostModel } from '../../src/sim/network.js';
import { replyTo, tcpPacket } from '../../src/sim/packet.js';

const host = (over: Partial<HostModel> = {}): HostModel => ({
  interfaces: [
    {
      name: 'br-int',
      port: 'LOCAL',
      mac: '02:00:00:00:0a:01',
      addresses: ['192.168.1.10/24'],
      forwarding: true,
      acceptLocal: false,
    },
    {
      name: 'gw0',
      port: 2,
      mac: '02:00:00:00:0b:01',
      addresses: ['10.1.0.1/24'],
      forwarding: true,
      acceptLocal: true,
    },
  ],
  routes: [
    { destination: '0.0.0.0/0', device: 'br-int', via: '192.168.1.1', why: 'default' },
    { destination: '10.2.0.0/16', device: 'br-int', via: '192.168.1.20', why: 'peer pods' },
    { destination: '10.2.3.0/24', device: 'gw0', why: 'more specific' },
    {
      destination: '169.254.0.252/32',
      device: 'gw0',
      source: '10.1.0.1',
      why: 'virtual NodePort IP',
    },
  ],
  neighbors: [{ device: 'gw0', ip: '169.254.0.252', mac: 'aa:bb:cc:dd:ee:ff', why: 'virtual' }],
  redirects: [
    {
      protocol: 'TCP',
      port: 30080,
      addresses: ['192.168.1.10', '127.0.0.1'],
      toIP: '169.254.0.252',
      snatIP: '10.1.0.1',
      device: 'gw0',
    },
  ],
  ...over,
});

describe('host model', () => {
  it('routes by longest prefix, connected subnets included', () => {
    const r = new Routing(host());
    assert.equal(r.lookup('10.2.3.4')!.dev, 'gw0');
    assert.deepEqual(r.lookup('10.2.4.4'), {
      dev: 'br-int',
      via: '192.168.1.20',
      src: '192.168.1.10',
    });
    assert.equal(r.lookup('192.168.1.77')!.via, undefined);
    assert.equal(r.lookup('8.8.8.8')!.via, '192.168.1.1');
    assert.equal(r.lookup('10.1.0.9')!.dev, 'gw0');
  });

  it('local delivery, accept_local and forwarding per interface', () => {
    const h = new Host(host());
    const toNode = tcpPacket({ src: '192.168.1.10:1000', dst: '192.168.1.10:22' });
    assert.equal(h.receive('br-int', toNode, 0).kind, 'drop');
    assert.equal(h.receive('gw0', toNode, 0).kind, 'local');
    const transit = tcpPacket({ src: '10.1.0.5:1000', dst: '10.2.4.4:80' });
    const fwd = h.receive('gw0', transit, 0);
    assert.ok(fwd.kind === 'forward' && fwd.port === 'LOCAL' && fwd.nextHop === '192.168.1.20');
    const noFwd = new Host(
      host({ interfaces: host().interfaces.map((i) => ({ ...i, forwarding: false })) }),
    );
    assert.equal(noFwd.receive('gw0', transit, 0).kind, 'drop');
  });

  it('host-originated NodePort access is redirected, and the reply un-NATed', () => {
    const h = new Host(host(), new Conntrack());
    const curl = tcpPacket({ src: '192.168.1.10:50000', dst: '192.168.1.10:30080' });
    const out = h.send(curl, 0);
    assert.ok(out.kind === 'forward');
    assert.equal(out.dev, 'gw0');
    assert.deepEqual(
      [out.packet.ipSrc, out.packet.ipDst, out.packet.tpDst],
      ['10.1.0.1', '169.254.0.252', 30080],
    );
    assert.equal(out.packet.ethDst, 'aa:bb:cc:dd:ee:ff');
    const back = h.receive('gw0', replyTo(out.packet), 0);
    assert.ok(back.kind === 'local');
    assert.deepEqual(
      [back.packet.ipSrc, back.packet.tpSrc, back.packet.ipDst, back.packet.tpDst],
      ['192.168.1.10', 30080, '192.168.1.10', 50000],
    );
  });
});

describe('network', () => {
  const fl = (
    table: number,
    priority: number,
    match: Flow['match'],
    actions: Flow['actions'],
  ): Flow => ({ table, priority, cookie: 0n, match, actions });
  // A toy bridge: uplink (1) ↔ pod (5) by destination, the rest to LOCAL.
  const bridge = compileProgram({
    groups: [],
    flows: [
      fl(
        0,
        20,
        [
          { kind: 'eth_type', value: 'ip' },
          { kind: 'nw_dst', cidr: '10.1.0.5' },
        ],
        [{ kind: 'output', port: 5 }],
      ),
      fl(0, 10, [{ kind: 'in_port', port: 5 }], [{ kind: 'output', port: 1 }]),
      fl(0, 0, [], [{ kind: 'output', port: 'LOCAL' }]),
    ],
  });
  const net = new Network(
    [
      {
        name: 'node-a',
        program: bridge,
        host: new Host(host()),
        conntrack: new Conntrack(),
        uplinkPort: 1,
        uplinkMac: '02:00:00:00:0a:01',
        wireIPs: ['192.168.1.10'],
        pods: [{ ip: '10.1.0.5', mac: '02:00:00:00:00:05', ofport: 5 }],
      },
    ],
    [{ name: 'client', ip: '192.168.1.99', mac: '02:00:00:00:00:99' }],
  );

  it('a station reaches a pod through the uplink, and the reply comes back on the wire', () => {
    const req = tcpPacket({
      src: '192.168.1.99:4000',
      dst: '10.1.0.5:80',
      ethSrc: '02:00:00:00:00:99',
      ethDst: '02:00:00:00:0a:01',
    });
    const j = net.send({ kind: 'station', name: 'client' }, req);
    assert.equal(j.verdict, 'delivered');
    assert.deepEqual(j.arrivals[0].place, { kind: 'pod', node: 'node-a', ip: '10.1.0.5' });
    const rep = { ...replyTo(j.arrivals[0].packet), ethDst: net.wireMac('192.168.1.99')! };
    const back = net.send({ kind: 'pod', node: 'node-a', ip: '10.1.0.5' }, rep);
    assert.equal(back.verdict, 'delivered');
    assert.deepEqual(back.arrivals[0].place, { kind: 'station', name: 'client' });
  });

  it('traffic for the node goes to LOCAL and is delivered to the host', () => {
    const req = tcpPacket({
      src: '192.168.1.99:4000',
      dst: '192.168.1.10:22',
      ethDst: '02:00:00:00:0a:01',
    });
    const j = net.send({ kind: 'station', name: 'client' }, req);
    assert.equal(j.verdict, 'delivered');
    assert.deepEqual(j.arrivals[0].place, { kind: 'host', node: 'node-a' });
  });
});
