import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Action, Flow, Group, MatchField } from '../../src/openflow/types.js';
import { Conntrack } from '../../src/sim/conntrack.js';
import {
  compileProgram,
  formatTrace,
  simulate,
  type SimOptions,
} from '../../src/sim/interpreter.js';
import { arpRequest, replyTo, tcpPacket, udpPacket, type Packet } from '../../src/sim/packet.js';

const fl = (table: number, priority: number, match: MatchField[], actions: Action[]): Flow => ({
  table,
  priority,
  cookie: 0n,
  match,
  actions,
});
const out = (port: number | 'LOCAL' | 'IN_PORT'): Action => ({ kind: 'output', port });
const goto = (table: number): Action => ({ kind: 'goto_table', table });
const resubmit = (table: number): Action => ({ kind: 'resubmit', table });
const setReg = (reg: number, value: number, start = 0, end = 31): Action => ({
  kind: 'set',
  field: { kind: 'reg', slice: { reg, start, end } },
  value,
});
const reg = (r: number, value: number, mask = 0xffffffff): MatchField => ({
  kind: 'reg',
  reg: r,
  value,
  mask,
});
const inPort = (port: number | 'LOCAL'): MatchField => ({ kind: 'in_port', port });
const ct = (flags: string): MatchField => {
  const out: Record<string, boolean> = {};
  for (const m of flags.matchAll(/([+-])(\w+)/g)) out[m[2]] = m[1] === '+';
  return { kind: 'ct_state', flags: out };
};
const ip: MatchField = { kind: 'eth_type', value: 'ip' };

function run(
  flows: Flow[],
  port: number | 'LOCAL',
  pkt: Packet,
  opts: SimOptions = {},
  groups: Group[] = [],
) {
  return simulate(compileProgram({ flows, groups }), port, pkt, opts);
}

const syn = tcpPacket({ src: '10.0.0.1:40000', dst: '10.96.0.10:80' });

describe('matching', () => {
  it('takes the highest priority among matching flows, whatever the specificity', () => {
    const flows = [
      fl(0, 100, [ip, { kind: 'nw_dst', cidr: '10.96.0.10' }], [out(1)]),
      fl(0, 200, [ip, { kind: 'nw_dst', cidr: '10.96.0.0/12' }], [out(2)]),
      fl(0, 300, [ip, { kind: 'nw_dst', cidr: '10.97.0.0/16' }], [out(3)]),
      fl(0, 0, [], [out(9)]),
    ];
    assert.deepEqual(
      run(flows, 5, syn).outputs.map((o) => o.port),
      [2],
    );
    const other = tcpPacket({ src: '10.0.0.1:1', dst: '192.168.0.1:80' });
    assert.deepEqual(
      run(flows, 5, other).outputs.map((o) => o.port),
      [9],
    );
  });

  it('masked registers, in_port, protocol, ports, MACs and ct_state', () => {
    const flows = [
      fl(0, 10, [inPort(5)], [setReg(0, 0x24, 0, 7), goto(1)]),
      fl(1, 50, [reg(0, 0x4, 0xf), { kind: 'ip_proto', value: 'udp' }], [out(1)]),
      fl(
        1,
        40,
        [reg(0, 0x4, 0xf), { kind: 'ip_proto', value: 'tcp' }, { kind: 'tp_dst', port: 81 }],
        [out(2)],
      ),
      fl(
        1,
        30,
        [reg(0, 0x20, 0xf0), { kind: 'dl_src', mac: '02:00:00:00:00:01' }, ct('-trk')],
        [out(3)],
      ),
      fl(1, 20, [reg(0, 0x4, 0xf)], [out(4)]),
    ];
    assert.deepEqual(
      run(flows, 5, syn).outputs.map((o) => o.port),
      [3],
    );
    assert.deepEqual(run(flows, 6, syn).verdict, 'drop');
    const udp = udpPacket({ src: '10.0.0.1:1', dst: '10.0.0.2:53' });
    assert.deepEqual(
      run(flows, 5, udp).outputs.map((o) => o.port),
      [1],
    );
  });

  it('a table miss drops, and the trace says so', () => {
    const res = run([fl(0, 10, [inPort(1)], [goto(5)])], 1, syn);
    assert.equal(res.verdict, 'drop');
    const last = res.trace[res.trace.length - 1];
    assert.ok(last.kind === 'table' && last.table === 5 && last.flow === null);
    assert.match(formatTrace(res.trace), /table 5: miss/);
  });

  it('IP fields never match an ARP packet', () => {
    const flows = [
      fl(0, 10, [{ kind: 'nw_dst', cidr: '0.0.0.0/1' }], [out(1)]),
      fl(
        0,
        5,
        [
          { kind: 'eth_type', value: 'arp' },
          { kind: 'arp_tpa', ip: '10.0.0.1' },
        ],
        [out(2)],
      ),
    ];
    const arp = arpRequest({ sha: '02:00:00:00:00:09', spa: '10.0.0.9', tpa: '10.0.0.1' });
    assert.deepEqual(
      run(flows, 3, arp).outputs.map((o) => o.port),
      [2],
    );
  });

  it('reports two matching flows of equal priority', () => {
    const flows = [fl(0, 10, [inPort(1)], [out(2)]), fl(0, 10, [ip], [out(3)])];
    const res = run(flows, 1, syn);
    assert.equal(res.ambiguities.length, 1);
    assert.deepEqual(
      res.outputs.map((o) => o.port),
      [2],
    ); // program order breaks the tie
  });

  it('a later flow with the same match and priority replaces the earlier one', () => {
    const flows = [fl(0, 10, [inPort(1)], [out(2)]), fl(0, 10, [inPort(1)], [out(3)])];
    assert.deepEqual(
      run(flows, 1, syn).outputs.map((o) => o.port),
      [3],
    );
  });
});

describe('action order', () => {
  it('resubmit runs in place; goto_table runs after the whole list', () => {
    const flows = [
      fl(
        0,
        10,
        [],
        [goto(5), resubmit(3), { kind: 'set', field: { kind: 'ip_dst' }, value: '10.0.0.99' }],
      ),
      fl(3, 10, [], [out(10), setReg(2, 7)]),
      fl(5, 10, [reg(2, 7)], [out(11)]),
    ];
    const res = run(flows, 1, syn);
    assert.deepEqual(
      res.outputs.map((o) => [o.port, o.packet.ipDst]),
      [
        [10, '10.96.0.10'],
        [11, '10.0.0.99'],
      ],
    );
    assert.equal(res.verdict, 'duplicate');
  });

  it('output to the in_port is skipped unless it says IN_PORT', () => {
    assert.equal(run([fl(0, 1, [], [out(4)])], 4, syn).verdict, 'drop');
    assert.deepEqual(
      run([fl(0, 1, [], [out('IN_PORT')])], 4, syn).outputs.map((o) => o.port),
      [4],
    );
    assert.equal(run([fl(0, 1, [], [out('LOCAL')])], 'LOCAL', syn).verdict, 'drop');
    const viaReg: Action = { kind: 'output_reg', slice: { reg: 1, start: 0, end: 15 } };
    assert.equal(run([fl(0, 1, [], [setReg(1, 4), viaReg])], 4, syn).verdict, 'drop');
    assert.deepEqual(
      run([fl(0, 1, [], [setReg(1, 6), viaReg])], 4, syn).outputs.map((o) => o.port),
      [6],
    );
  });

  it('the ARP responder turns a request into a reply out of IN_PORT', () => {
    const vmac = 'aa:bb:cc:dd:ee:ff';
    const responder = fl(
      0,
      200,
      [
        { kind: 'eth_type', value: 'arp' },
        { kind: 'arp_op', op: 1 },
        { kind: 'arp_tpa', ip: '169.254.169.110' },
      ],
      [
        { kind: 'move', from: { kind: 'eth_src' }, to: { kind: 'eth_dst' } },
        { kind: 'set', field: { kind: 'eth_src' }, value: vmac },
        { kind: 'set', field: { kind: 'arp_op' }, value: 2 },
        { kind: 'move', from: { kind: 'arp_sha' }, to: { kind: 'arp_tha' } },
        { kind: 'set', field: { kind: 'arp_sha' }, value: vmac },
        { kind: 'move', from: { kind: 'arp_spa' }, to: { kind: 'arp_tpa' } },
        { kind: 'set', field: { kind: 'arp_spa' }, value: '169.254.169.110' },
        out('IN_PORT'),
      ],
    );
    const req = arpRequest({ sha: '02:00:00:00:00:09', spa: '10.0.0.9', tpa: '169.254.169.110' });
    const res = run([responder], 2, req);
    assert.deepEqual(res.outputs[0].packet, {
      ethSrc: vmac,
      ethDst: '02:00:00:00:00:09',
      ethType: 'arp',
      arpOp: 2,
      arpSha: vmac,
      arpTha: '02:00:00:00:00:09',
      arpSpa: '169.254.169.110',
      arpTpa: '10.0.0.9',
    });
  });

  it('a group bucket works on a copy of the packet', () => {
    const groups: Group[] = [
      {
        id: 1,
        type: 'select',
        buckets: [{ id: 0, weight: 1, actions: [setReg(3, 9), resubmit(2)] }],
      },
    ];
    const flows = [
      fl(0, 1, [], [{ kind: 'group', id: 1 }, resubmit(3)]),
      fl(2, 1, [reg(3, 9)], [out(5)]),
      fl(3, 1, [reg(3, 0)], [out(6)]),
    ];
    assert.deepEqual(
      run(flows, 1, syn, {}, groups).outputs.map((o) => o.port),
      [5, 6],
    );
  });

  it('an empty select group drops', () => {
    const res = run([fl(0, 1, [], [{ kind: 'group', id: 1 }])], 1, syn, {}, [
      { id: 1, type: 'select', buckets: [] },
    ]);
    assert.equal(res.verdict, 'drop');
    assert.ok(res.trace.some((e) => e.kind === 'group' && e.bucket === null));
  });
});

describe('select group methods', () => {
  const buckets = [0, 1, 2, 3].map((i) => ({ id: i, weight: 100, actions: [out(10 + i)] }));
  const udpFrom = (sport: number) => udpPacket({ src: `10.0.0.1:${sport}`, dst: '10.96.0.10:53' });
  const spread = (g: Group): number => {
    const prog = compileProgram({ flows: [fl(0, 1, [], [{ kind: 'group', id: 1 }])], groups: [g] });
    const seen = new Set<number | 'LOCAL'>();
    for (let p = 1000; p < 1064; p++) seen.add(simulate(prog, 1, udpFrom(p)).outputs[0].port);
    return seen.size;
  };

  it('the default method ignores UDP ports; hash with fields uses them', () => {
    assert.equal(spread({ id: 1, type: 'select', buckets }), 1);
    const fields = ['ip_src', 'ip_dst', 'udp_src', 'udp_dst'];
    assert.equal(spread({ id: 1, type: 'select', hashFields: fields, buckets }), 4);
  });

  it('the default method costs a datapath recirculation', () => {
    // Five ct recirculations, then a group: the sixth recirculation is the dp_hash one.
    const flows: Flow[] = [];
    for (let t = 0; t < 5; t++)
      flows.push(fl(t, 1, [], [{ kind: 'ct', commit: false, zone: t + 1, table: t + 1 }]));
    flows.push(fl(5, 1, [], [{ kind: 'group', id: 1 }]));
    const g: Group = {
      id: 1,
      type: 'select',
      buckets: [{ id: 0, weight: 1, actions: [resubmit(6)] }],
    };
    flows.push(
      fl(6, 1, [], [{ kind: 'ct', commit: false, zone: 9, table: 7 }]),
      fl(7, 1, [], [out(2)]),
    );
    const plain = run(flows, 1, syn, {}, [g]);
    assert.equal(plain.verdict, 'error');
    assert.match(plain.error!, /dp_hash|recirculations/);
    const hashed = run(flows, 1, syn, {}, [
      { ...g, hashFields: ['ip_src', 'ip_dst', 'tcp_src', 'tcp_dst'] },
    ]);
    assert.equal(hashed.verdict, 'output', formatTrace(hashed.trace));
    assert.equal(hashed.outputs[0].recirc, 6);
  });

  it('an unknown hash field is an error naming it', () => {
    const g: Group = { id: 1, type: 'select', hashFields: ['ipv6_src'], buckets };
    assert.match(
      run([fl(0, 1, [], [{ kind: 'group', id: 1 }])], 1, syn, {}, [g]).error!,
      /ipv6_src/,
    );
  });
});

describe('errors', () => {
  it('an unknown action is an error naming it', () => {
    const res = run([fl(0, 1, [], [{ kind: 'learn' } as unknown as Action])], 1, syn);
    assert.equal(res.verdict, 'error');
    assert.match(res.error!, /learn/);
  });
  it('a resubmit loop hits the depth limit', () => {
    const res = run([fl(0, 1, [], [resubmit(1)]), fl(1, 1, [], [resubmit(1)])], 1, syn);
    assert.equal(res.verdict, 'error');
    assert.match(res.error!, /loop/);
  });
  it('a resubmit fan-out hits the lookup limit', () => {
    const flows = [fl(0, 1, [], [resubmit(1)]), fl(1, 1, [], [resubmit(2), resubmit(2)])];
    for (let t = 2; t < 20; t++) flows.push(fl(t, 1, [], [resubmit(t + 1), resubmit(t + 1)]));
    const res = run(flows, 1, syn, { trace: false });
    assert.equal(res.verdict, 'error');
    assert.match(res.error!, /lookups/);
  });
  it('a recirculation loop hits the recirculation limit', () => {
    const res = run([fl(0, 1, [], [{ kind: 'ct', commit: false, zone: 1, table: 0 }])], 1, syn);
    assert.equal(res.verdict, 'error');
    assert.match(res.error!, /recirculation/);
  });
  it('ct with nat(…) or exec(…) but without commit is an error, as OVS refuses it', () => {
    const bad: Action = {
      kind: 'ct',
      commit: false,
      zone: 1,
      nat: { type: 'dst', ip: '10.0.0.5' },
    };
    assert.match(run([fl(0, 1, [], [bad])], 1, syn).error!, /commit/);
  });
  it('goto_table backwards and missing groups are errors', () => {
    assert.equal(run([fl(3, 1, [], [goto(2)])], 1, syn, { startTable: 3 }).verdict, 'error');
    assert.match(run([fl(0, 1, [], [{ kind: 'group', id: 4 }])], 1, syn).error!, /group 4/);
  });
});

// ---------------------------------------------------------------------------------------------
// Conntrack through the pipeline

const CLIENT = 1;
const SERVER = 2;
const ZA = 65520;
const ZB = 65521;

/**
 * A NodePort-like path: DNAT in zone A (VIP:80 → endpoint), then SNAT in zone B; replies are
 * un-SNATed in B and un-DNATed in A. Endpoints come from a select group met by new connections.
 */
function natPipeline(): { flows: Flow[]; groups: Group[] } {
  const ep = (n: number, addr: string): Flow =>
    fl(
      42,
      10,
      [reg(3, n)],
      [
        {
          kind: 'ct',
          commit: true,
          zone: ZA,
          table: 2,
          nat: { type: 'dst', ip: addr, port: 8080 },
          setMark: { value: 0x1, mask: 0x1 },
        },
      ],
    );
  return {
    groups: [
      {
        id: 7,
        type: 'select',
        buckets: [
          { id: 0, weight: 1, actions: [setReg(3, 1), resubmit(42)] },
          { id: 1, weight: 1, actions: [setReg(3, 2), resubmit(42)] },
        ],
      },
    ],
    flows: [
      fl(
        0,
        10,
        [inPort(CLIENT), ip],
        [{ kind: 'ct', commit: false, zone: ZA, table: 1, nat: 'existing' }],
      ),
      fl(
        0,
        10,
        [inPort(SERVER), ip],
        [{ kind: 'ct', commit: false, zone: ZB, table: 10, nat: 'existing' }],
      ),
      // request, zone A
      fl(1, 20, [ct('+new+trk')], [{ kind: 'group', id: 7 }]),
      fl(1, 10, [ct('+est+trk')], [goto(2)]),
      ep(1, '10.0.0.5'),
      ep(2, '10.0.0.6'),
      // request, zone B
      fl(2, 10, [], [{ kind: 'ct', commit: false, zone: ZB, table: 3, nat: 'existing' }]),
      fl(
        3,
        20,
        [ct('+new+trk')],
        [{ kind: 'ct', commit: true, zone: ZB, table: 4, nat: { type: 'src', ip: '192.168.0.1' } }],
      ),
      fl(3, 10, [ct('+est+trk')], [goto(4)]),
      fl(4, 10, [], [out(SERVER)]),
      // reply: un-SNAT happened in table 0's ct; now un-DNAT in zone A
      fl(
        10,
        10,
        [ct('+est+rpl+trk')],
        [{ kind: 'ct', commit: false, zone: ZA, table: 11, nat: 'existing' }],
      ),
      fl(11, 10, [ct('+est+rpl+trk'), { kind: 'ct_mark', value: 1, mask: 1 }], [out(CLIENT)]),
    ],
  };
}

describe('conntrack through the pipeline', () => {
  it('DNAT then SNAT; the reply is un-SNATed then un-DNATed back to exactly the client view', () => {
    const { flows, groups } = natPipeline();
    const prog = compileProgram({ flows, groups });
    const conntrack = new Conntrack();
    const first = simulate(prog, CLIENT, syn, { conntrack, chooseBucket: () => 0 });
    assert.equal(first.verdict, 'output', formatTrace(first.trace));
    const atServer = first.outputs[0].packet;
    assert.deepEqual(
      [atServer.ipSrc, atServer.tpSrc, atServer.ipDst, atServer.tpDst],
      ['192.168.0.1', 40000, '10.0.0.5', 8080],
    );
    const back = simulate(prog, SERVER, replyTo(atServer), { conntrack });
    assert.equal(back.verdict, 'output', formatTrace(back.trace));
    const atClient = back.outputs[0].packet;
    assert.deepEqual(back.outputs[0].port, CLIENT);
    assert.deepEqual(
      [atClient.ipSrc, atClient.tpSrc, atClient.ipDst, atClient.tpDst],
      ['10.96.0.10', 80, '10.0.0.1', 40000],
    );
    assert.equal(conntrack.size, 2);
  });

  it('the select group is met only by the first packet; conntrack pins the rest', () => {
    const { flows, groups } = natPipeline();
    const prog = compileProgram({ flows, groups });
    const conntrack = new Conntrack();
    const a = simulate(prog, CLIENT, syn, { conntrack, chooseBucket: () => 1 });
    assert.equal(a.outputs[0].packet.ipDst, '10.0.0.6');
    simulate(prog, SERVER, replyTo(a.outputs[0].packet), { conntrack });
    const ack = { ...syn, tcpFlags: { ack: true } };
    const b = simulate(prog, CLIENT, ack, { conntrack, chooseBucket: () => 0 });
    assert.equal(b.outputs[0].packet.ipDst, '10.0.0.6');
    assert.ok(!b.trace.some((e) => e.kind === 'group'));
    assert.ok(a.trace.some((e) => e.kind === 'group' && e.bucket === 1));
  });

  it('without a forced bucket the hash is deterministic per connection', () => {
    const { flows, groups } = natPipeline();
    const prog = compileProgram({ flows, groups });
    const pick = (sport: number): string =>
      simulate(prog, CLIENT, tcpPacket({ src: `10.0.0.1:${sport}`, dst: '10.96.0.10:80' }))
        .outputs[0].packet.ipDst!;
    const seen = new Set<string>();
    for (let p = 40000; p < 40032; p++) {
      assert.equal(pick(p), pick(p));
      seen.add(pick(p));
    }
    assert.equal(seen.size, 2);
  });

  it('SNAT picks another source port when the translated tuple is taken', () => {
    const { flows, groups } = natPipeline();
    const prog = compileProgram({ flows, groups });
    const conntrack = new Conntrack();
    const c1 = tcpPacket({ src: '10.0.0.1:40000', dst: '10.96.0.10:80' });
    const c2 = tcpPacket({ src: '10.0.0.2:40000', dst: '10.96.0.10:80' });
    const o1 = simulate(prog, CLIENT, c1, { conntrack, chooseBucket: () => 0 }).outputs[0].packet;
    const o2 = simulate(prog, CLIENT, c2, { conntrack, chooseBucket: () => 0 }).outputs[0].packet;
    assert.equal(o1.tpSrc, 40000);
    assert.notEqual(o2.tpSrc, 40000);
    const r2 = simulate(prog, SERVER, replyTo(o2), { conntrack }).outputs[0].packet;
    assert.deepEqual(
      [r2.ipDst, r2.tpDst, r2.ipSrc, r2.tpSrc],
      ['10.0.0.2', 40000, '10.96.0.10', 80],
    );
  });

  it('ct_mark written at commit is visible after recirculation and on later packets', () => {
    const flows = [
      fl(0, 10, [], [{ kind: 'ct', commit: false, zone: 5, table: 1 }]),
      fl(
        1,
        20,
        [ct('+new+trk')],
        [{ kind: 'ct', commit: true, zone: 5, table: 2, setMark: { value: 0x10, mask: 0x30 } }],
      ),
      fl(1, 10, [ct('-new+trk'), { kind: 'ct_mark', value: 0x10, mask: 0x30 }], [out(3)]),
      fl(2, 10, [{ kind: 'ct_mark', value: 0x10, mask: 0x30 }], [out(4)]),
    ];
    const prog = compileProgram({ flows, groups: [] });
    const conntrack = new Conntrack();
    const u = udpPacket({ src: '10.0.0.1:5000', dst: '10.0.0.2:53' });
    assert.deepEqual(
      simulate(prog, 1, u, { conntrack }).outputs.map((o) => o.port),
      [4],
    );
    simulate(prog, 2, replyTo(u), { conntrack });
    assert.deepEqual(
      simulate(prog, 1, u, { conntrack }).outputs.map((o) => o.port),
      [3],
    );
  });

  it('without commit every packet is new; TCP that cannot start a connection is invalid', () => {
    const flows = [
      fl(0, 10, [], [{ kind: 'ct', commit: false, zone: 5, table: 1 }]),
      fl(1, 20, [ct('+new+trk')], [out(3)]),
      fl(1, 20, [ct('+inv+trk')], [out(4)]),
    ];
    const prog = compileProgram({ flows, groups: [] });
    const conntrack = new Conntrack();
    for (let i = 0; i < 3; i++)
      assert.deepEqual(
        simulate(prog, 1, syn, { conntrack }).outputs.map((o) => o.port),
        [3],
      );
    const ports = (p: Packet, c: Conntrack): (number | 'LOCAL')[] =>
      simulate(prog, 1, p, { conntrack: c }).outputs.map((o) => o.port);
    // The userspace tracker picks up mid-stream segments but never a half-open SYN+ACK.
    assert.deepEqual(ports({ ...syn, tcpFlags: { ack: true } }, conntrack), [3]);
    assert.deepEqual(ports({ ...syn, tcpFlags: { syn: true, ack: true } }, conntrack), [4]);
    const strict = new Conntrack({ tcpStart: 'syn-only' });
    assert.deepEqual(ports({ ...syn, tcpFlags: { ack: true } }, strict), [4]);
    assert.equal(conntrack.size + strict.size, 0);
  });

  // Both cases below were checked on ovs-vswitchd 3.1 (userspace datapath, dummy ports, pcap).
  it('actions after ct(table=…) fork: the original goes on untracked, with translated bytes', () => {
    const dnat: Action = {
      kind: 'ct',
      commit: true,
      zone: 5,
      table: 1,
      nat: { type: 'dst', ip: '10.0.0.5', port: 8080 },
    };
    const flows = [fl(0, 10, [], [dnat, out(2)]), fl(1, 10, [], [out(3)])];
    const res = run(flows, 1, syn);
    assert.equal(res.verdict, 'duplicate');
    assert.deepEqual(
      res.outputs.map((o) => [o.port, o.packet.ipDst, o.packet.tpDst, o.path]),
      [
        [3, '10.0.0.5', 8080, 1],
        [2, '10.0.0.5', 8080, 0],
      ],
    );
    const origOut = res.trace.find((e) => e.kind === 'output' && e.port === 2);
    assert.ok(origOut && origOut.kind === 'output' && origOut.packet.ct === '-trk');
  });

  it('after ct(nat) without table, matching still sees the untranslated headers', () => {
    const dnat: Action = {
      kind: 'ct',
      commit: true,
      zone: 6,
      nat: { type: 'dst', ip: '10.0.0.5', port: 8080 },
    };
    const flows = [
      fl(0, 10, [], [dnat, resubmit(2)]),
      fl(
        2,
        20,
        [
          { kind: 'ip_proto', value: 'tcp' },
          { kind: 'nw_dst', cidr: '10.0.0.5' },
        ],
        [out(3)],
      ),
      fl(2, 10, [{ kind: 'ip_proto', value: 'tcp' }, ct('-trk')], [out(2)]),
    ];
    const res = run(flows, 1, syn);
    assert.deepEqual(
      res.outputs.map((o) => [o.port, o.packet.ipDst, o.packet.tpDst]),
      [[2, '10.0.0.5', 8080]],
    );
  });

  it('a field written after ct(nat) replaces the translated value on the wire', () => {
    const snat: Action = {
      kind: 'ct',
      commit: true,
      zone: 5,
      nat: { type: 'src', ip: '192.168.0.1' },
    };
    const setDst: Action = { kind: 'set', field: { kind: 'ip_src' }, value: '10.9.9.9' };
    const res = run([fl(0, 10, [], [snat, setDst, out(2)])], 1, syn);
    assert.equal(res.outputs[0].packet.ipSrc, '10.9.9.9');
    const plain = run([fl(0, 10, [], [snat, out(2)])], 1, syn);
    assert.equal(plain.outputs[0].packet.ipSrc, '192.168.0.1');
  });

  it('registers survive recirculation', () => {
    const flows = [
      fl(0, 10, [], [setReg(8, 2, 0, 15), { kind: 'ct', commit: false, zone: 1, table: 1 }]),
      fl(1, 10, [reg(8, 2, 0xffff), ct('+trk')], [out(2)]),
    ];
    assert.deepEqual(
      run(flows, 1, syn).outputs.map((o) => o.port),
      [2],
    );
  });
});
