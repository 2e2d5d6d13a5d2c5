import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  OfParseError,
  canonicalFlow,
  parseActions,
  parseFlow,
  parseFlows,
  parseGroup,
  parseGroups,
} from '../../src/openflow/parse.js';
import { renderFlow, renderGroup } from '../../src/openflow/render.js';
import type { Action, Flow, Group, MatchField } from '../../src/openflow/types.js';

const flow = (match: MatchField[], actions: Action[], extra: Partial<Flow> = {}): Flow => ({
  table: 42,
  priority: 200,
  cookie: 0x1234n,
  match,
  actions,
  ...extra,
});

// One flow per match kind and per action kind, in the order the compiler writes them.
const MATCHES: MatchField[][] = [
  [{ kind: 'in_port', port: 3 }],
  [{ kind: 'in_port', port: 'LOCAL' }],
  [{ kind: 'eth_type', value: 'ip' }],
  [{ kind: 'eth_type', value: 'arp' }],
  [
    { kind: 'ip_proto', value: 'tcp' },
    { kind: 'tp_dst', port: 80 },
  ],
  [
    { kind: 'ip_proto', value: 'udp' },
    { kind: 'tp_src', port: 53 },
  ],
  [{ kind: 'ip_proto', value: 'sctp' }],
  [{ kind: 'ip_proto', value: 'icmp' }],
  [{ kind: 'ip_proto', value: 'igmp' }],
  [
    { kind: 'eth_type', value: 'ip' },
    { kind: 'dl_src', mac: 'aa:bb:cc:dd:ee:ff' },
    { kind: 'dl_dst', mac: '02:00:00:00:00:01' },
  ],
  [
    { kind: 'eth_type', value: 'ip' },
    { kind: 'nw_src', cidr: '10.0.0.0/24' },
    { kind: 'nw_dst', cidr: '10.96.0.10' },
  ],
  [
    { kind: 'eth_type', value: 'arp' },
    { kind: 'arp_op', op: 1 },
    { kind: 'arp_spa', ip: '10.0.0.1' },
    { kind: 'arp_tpa', ip: '169.254.169.110' },
  ],
  [{ kind: 'reg', reg: 0, value: 0x4, mask: 0xf }],
  [{ kind: 'reg', reg: 15, value: 0xffffffff, mask: 0xffffffff }],
  [{ kind: 'ct_state', flags: { new: true, trk: true } }],
  [{ kind: 'ct_state', flags: { new: false, est: true, rpl: true, trk: true, dnat: true } }],
  [{ kind: 'ct_state', flags: { rel: false, inv: true, snat: false } }],
  [{ kind: 'ct_mark', value: 0x1, mask: 0x1 }],
  [],
];

const ACTIONS: Action[][] = [
  [{ kind: 'goto_table', table: 70 }],
  [{ kind: 'resubmit', table: 41 }],
  [{ kind: 'output', port: 5 }],
  [{ kind: 'output', port: 'LOCAL' }],
  [{ kind: 'output', port: 'IN_PORT' }],
  [{ kind: 'output_reg', slice: { reg: 1, start: 0, end: 31 } }],
  [{ kind: 'output_reg', slice: { reg: 1, start: 0, end: 15 } }],
  [{ kind: 'group', id: 7 }],
  [{ kind: 'drop' }],
  [{ kind: 'set', field: { kind: 'reg', slice: { reg: 3, start: 0, end: 31 } }, value: 0xa000005 }],
  [{ kind: 'set', field: { kind: 'reg', slice: { reg: 4, start: 16, end: 16 } }, value: 1 }],
  [{ kind: 'set', field: { kind: 'eth_src' }, value: 'aa:bb:cc:dd:ee:ff' }],
  [{ kind: 'set', field: { kind: 'eth_dst' }, value: '02:00:00:00:00:02' }],
  [{ kind: 'set', field: { kind: 'ip_src' }, value: '10.0.0.1' }],
  [{ kind: 'set', field: { kind: 'ip_dst' }, value: '169.254.169.110' }],
  [{ kind: 'set', field: { kind: 'tp_src' }, value: 1234 }],
  [{ kind: 'set', field: { kind: 'tp_dst' }, value: 8080 }],
  [{ kind: 'set', field: { kind: 'arp_op' }, value: 2 }],
  [{ kind: 'set', field: { kind: 'arp_sha' }, value: 'aa:bb:cc:dd:ee:ff' }],
  [{ kind: 'set', field: { kind: 'arp_tha' }, value: '02:00:00:00:00:09' }],
  [{ kind: 'set', field: { kind: 'arp_spa' }, value: '10.0.0.1' }],
  [{ kind: 'set', field: { kind: 'arp_tpa' }, value: '10.0.0.2' }],
  [
    { kind: 'move', from: { kind: 'eth_src' }, to: { kind: 'eth_dst' } },
    { kind: 'move', from: { kind: 'arp_sha' }, to: { kind: 'arp_tha' } },
    { kind: 'move', from: { kind: 'arp_spa' }, to: { kind: 'arp_tpa' } },
    {
      kind: 'move',
      from: { kind: 'reg', slice: { reg: 3, start: 0, end: 31 } },
      to: { kind: 'ip_dst' },
    },
    {
      kind: 'move',
      from: { kind: 'reg', slice: { reg: 4, start: 0, end: 15 } },
      to: { kind: 'tp_dst' },
    },
  ],
  [{ kind: 'ct', commit: false, zone: 65520, table: 30, nat: 'existing' }],
  [{ kind: 'ct', commit: false, zone: 1 }],
  [
    {
      kind: 'ct',
      commit: true,
      zone: 65500,
      table: 70,
      nat: { type: 'dst', ip: '10.0.0.5', port: 80 },
      setMark: { value: 0x1, mask: 0x1 },
    },
  ],
  [{ kind: 'ct', commit: true, zone: 65521, nat: { type: 'src', ip: '10.0.1.1' } }],
  [{ kind: 'ct', commit: true, zone: 5, setMark: { value: 0x6, mask: 0x6 } }],
  [{ kind: 'ct', commit: true, zone: 5, setMark: { value: 0x12345678, mask: 0xffffffff } }],
  [{ kind: 'ct_clear' }, { kind: 'output', port: 2 }],
];

describe('parse(render(x)) == x', () => {
  for (const m of MATCHES) {
    it(`match ${JSON.stringify(m)}`, () => {
      const f = flow(m, [{ kind: 'drop' }]);
      assert.deepEqual(parseFlow(renderFlow(f)), f);
    });
  }
  for (const a of ACTIONS) {
    it(`actions ${a.map((x) => x.kind).join(',')}`, () => {
      const f = flow([{ kind: 'eth_type', value: 'ip' }], a);
      assert.deepEqual(parseFlow(renderFlow(f)), f);
    });
  }
  it('table, priority and cookie', () => {
    const f = flow([], [{ kind: 'drop' }], { table: 0, priority: 0, cookie: 0xffffffffffffffffn });
    assert.deepEqual(parseFlow(renderFlow(f)), f);
  });
  it('groups', () => {
    const g: Group = {
      id: 7,
      type: 'select',
      buckets: [
        {
          id: 0,
          weight: 100,
          actions: [
            {
              kind: 'set',
              field: { kind: 'reg', slice: { reg: 3, start: 0, end: 31 } },
              value: 0xa000005,
            },
            { kind: 'resubmit', table: 42 },
          ],
        },
        { id: 1, weight: 50, actions: [{ kind: 'resubmit', table: 42 }] },
      ],
    };
    assert.deepEqual(parseGroup(renderGroup(g)), g);
    const empty: Group = { id: 8, type: 'select', buckets: [] };
    assert.deepEqual(parseGroup(renderGroup(empty)), empty);
  });
  it('a match in any order compares equal in canonical form', () => {
    const f = flow(
      [
        { kind: 'nw_dst', cidr: '10.96.0.10' },
        { kind: 'eth_type', value: 'ip' },
        { kind: 'ip_proto', value: 'tcp' },
        { kind: 'reg', reg: 0, value: 4, mask: 0xf },
      ],
      [],
    );
    assert.deepEqual(canonicalFlow(parseFlow(renderFlow(f))), canonicalFlow(f));
  });
});

// Captured from ovs-ofctl 3.1 (-O OpenFlow15) on a netdev bridge.
const DUMP = `OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x1, duration=0.008s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=220,ip,nw_proto=2 actions=drop
 cookie=0x12, duration=0.008s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=200,in_port=3 actions=set_field:0x4/0xf->reg0,goto_table:1
 cookie=0x1, duration=0.008s, table=1, n_packets=0, n_bytes=0, idle_age=0, priority=200,arp,arp_tpa=10.0.0.1,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:aa:bb:cc:dd:ee:ff->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:aa:bb:cc:dd:ee:ff->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.0.0.1->arp_spa,IN_PORT
 cookie=0x12, duration=0.008s, table=42, n_packets=0, n_bytes=0, idle_age=0, priority=200,ct_state=+new+trk,ct_mark=0x1/0x1,tcp,reg0=0x4/0xf,nw_dst=10.96.0.0/12,tp_dst=80 actions=set_field:0x5->reg3,set_field:0x10000/0x10000->reg4,set_field:10.0.0.5->ip_dst,set_field:8080->tcp_dst,ct(commit,table=42,zone=65500,nat(dst=10.0.0.5:80),exec(set_field:0x1/0x1->ct_mark)),group:7,output:NXM_NX_REG1[],IN_PORT,LOCAL,resubmit(,40),goto_table:70
 cookie=0x0, duration=0.008s, table=42, n_packets=0, n_bytes=0, idle_age=0, priority=190,ct_state=-new+est+trk,ct_mark=0x2,udp,dl_src=aa:bb:cc:dd:ee:ff,nw_src=10.0.0.0/8,tp_src=53 actions=ct(table=43,zone=65521,nat),ct(commit,zone=5,nat(src=10.1.1.1)),ct_clear,output:5,output:NXM_NX_REG1[0..15]
 cookie=0x0, duration=0.042s, table=3, n_packets=0, n_bytes=0, reset_counts udp,reg1=0/0xffff0000,tp_dst=53 actions=set_field:5353->udp_dst,LOCAL
 table=3, priority=5,ct_state=-trk,tcp actions=ct(table=4,zone=3)
`;

describe('dump-flows text', () => {
  const flows = parseFlows(DUMP);
  it('skips the reply header and reads every flow', () => assert.equal(flows.length, 7));
  it('reads priorities, tables, cookies and the default priority', () => {
    assert.deepEqual(
      flows.map((f) => [f.table, f.priority, f.cookie]),
      [
        [0, 220, 1n],
        [0, 200, 0x12n],
        [1, 200, 1n],
        [42, 200, 0x12n],
        [42, 190, 0n],
        [3, 32768, 0n],
        [3, 5, 0n],
      ],
    );
  });
  it('ip,nw_proto=2 is igmp; set_field on a register is a slice', () => {
    assert.deepEqual(flows[0].match, [{ kind: 'ip_proto', value: 'igmp' }]);
    assert.deepEqual(flows[1].actions, [
      { kind: 'set', field: { kind: 'reg', slice: { reg: 0, start: 0, end: 3 } }, value: 4 },
      { kind: 'goto_table', table: 1 },
    ]);
  });
  it('the ARP responder', () => {
    assert.deepEqual(flows[2].actions, [
      { kind: 'move', from: { kind: 'eth_src' }, to: { kind: 'eth_dst' } },
      { kind: 'set', field: { kind: 'eth_src' }, value: 'aa:bb:cc:dd:ee:ff' },
      { kind: 'set', field: { kind: 'arp_op' }, value: 2 },
      { kind: 'move', from: { kind: 'arp_sha' }, to: { kind: 'arp_tha' } },
      { kind: 'set', field: { kind: 'arp_sha' }, value: 'aa:bb:cc:dd:ee:ff' },
      { kind: 'move', from: { kind: 'arp_spa' }, to: { kind: 'arp_tpa' } },
      { kind: 'set', field: { kind: 'arp_spa' }, value: '10.0.0.1' },
      { kind: 'output', port: 'IN_PORT' },
    ]);
  });
  it('matches and actions of a Service flow as dump-flows orders them', () => {
    const f = flows[3];
    const expected = flow(
      [
        { kind: 'ip_proto', value: 'tcp' },
        { kind: 'reg', reg: 0, value: 4, mask: 0xf },
        { kind: 'nw_dst', cidr: '10.96.0.0/12' },
        { kind: 'tp_dst', port: 80 },
        { kind: 'ct_state', flags: { new: true, trk: true } },
        { kind: 'ct_mark', value: 1, mask: 1 },
      ],
      [
        { kind: 'set', field: { kind: 'reg', slice: { reg: 3, start: 0, end: 31 } }, value: 5 },
        { kind: 'set', field: { kind: 'reg', slice: { reg: 4, start: 16, end: 16 } }, value: 1 },
        { kind: 'set', field: { kind: 'ip_dst' }, value: '10.0.0.5' },
        { kind: 'set', field: { kind: 'tp_dst' }, value: 8080 },
        {
          kind: 'ct',
          commit: true,
          zone: 65500,
          table: 42,
          nat: { type: 'dst', ip: '10.0.0.5', port: 80 },
          setMark: { value: 1, mask: 1 },
        },
        { kind: 'group', id: 7 },
        { kind: 'output_reg', slice: { reg: 1, start: 0, end: 31 } },
        { kind: 'output', port: 'IN_PORT' },
        { kind: 'output', port: 'LOCAL' },
        { kind: 'resubmit', table: 40 },
        { kind: 'goto_table', table: 70 },
      ],
      { cookie: 0x12n },
    );
    assert.deepEqual(canonicalFlow(f), canonicalFlow(expected));
  });
  it('bare values mean a full mask; reset_counts and zero values', () => {
    assert.deepEqual(
      flows[4].match.find((m) => m.kind === 'ct_mark'),
      { kind: 'ct_mark', value: 2, mask: 0xffffffff },
    );
    assert.deepEqual(flows[5].match, [
      { kind: 'ip_proto', value: 'udp' },
      { kind: 'reg', reg: 1, value: 0, mask: 0xffff0000 },
      { kind: 'tp_dst', port: 53 },
    ]);
    assert.deepEqual(flows[5].actions, [
      { kind: 'set', field: { kind: 'tp_dst' }, value: 5353 },
      { kind: 'output', port: 'LOCAL' },
    ]);
  });
  it('NXM spellings of load and ct exec', () => {
    const f = parseFlow(
      'table=5,priority=1,ip actions=load:0xa000001->NXM_OF_IP_DST[],load:0xaabbccddeeff->NXM_OF_ETH_DST[],ct(commit,zone=7,exec(load:0x3->NXM_NX_CT_MARK[1..2])),output:NXM_NX_REG1[]',
    );
    assert.deepEqual(f.actions, [
      { kind: 'set', field: { kind: 'ip_dst' }, value: '10.0.0.1' },
      { kind: 'set', field: { kind: 'eth_dst' }, value: 'aa:bb:cc:dd:ee:ff' },
      { kind: 'ct', commit: true, zone: 7, setMark: { value: 6, mask: 6 } },
      { kind: 'output_reg', slice: { reg: 1, start: 0, end: 31 } },
    ]);
  });
  it('dump-groups', () => {
    const groups = parseGroups(`OFPST_GROUP_DESC reply (OF1.5) (xid=0x2):
 group_id=7,type=select,bucket=bucket_id:0,weight:100,actions=set_field:0xa000005->reg3,set_field:0x50/0xffff->reg4,resubmit(,42),bucket=bucket_id:1,weight:100,actions=set_field:0xa000006->reg3,resubmit(,42)
 group_id=8,type=select
 group_id=9,type=select,selection_method=hash,bucket=actions=resubmit(,42)`);
    assert.equal(groups.length, 3);
    assert.deepEqual(groups[0].buckets[0].actions, [
      {
        kind: 'set',
        field: { kind: 'reg', slice: { reg: 3, start: 0, end: 31 } },
        value: 0xa000005,
      },
      { kind: 'set', field: { kind: 'reg', slice: { reg: 4, start: 0, end: 15 } }, value: 0x50 },
      { kind: 'resubmit', table: 42 },
    ]);
    assert.deepEqual(groups[1], { id: 8, type: 'select', buckets: [] });
    assert.deepEqual(groups[2].buckets, [
      { id: 0, weight: 1, actions: [{ kind: 'resubmit', table: 42 }] },
    ]);
  });
});

describe('unknown text is an error that names it', () => {
  const cases: [string, RegExp][] = [
    ['table=0,tcp,tcp_flags=+syn actions=drop', /tcp_flags/],
    ['table=0,ipv6 actions=drop', /ipv6/],
    ['table=0,metadata=0x1 actions=drop', /metadata/],
    ['table=0 actions=learn(table=40,hard_timeout=10)', /learn/],
    ['table=0 actions=mod_vlan_vid:10', /mod_vlan_vid/],
    ['table=0 actions=ct(commit,nat(src=10.0.0.1-10.0.0.9))', /nat/],
    ['table=0 actions=ct(commit,alg=ftp)', /alg=ftp/],
    ['table=0 actions=set_field:0x1->tun_id', /tun_id/],
    ['table=0 actions=output:1,drop', /drop/],
    ['table=0,ct_state=+foo actions=drop', /foo/],
    ['group_id=1,type=all,bucket=actions=output:1', /all/],
  ];
  for (const [text, re] of cases) {
    it(text, () => {
      const parse = text.startsWith('group_id') ? parseGroup : parseFlow;
      assert.throws(
        () => parse(text),
        (e: unknown) => e instanceof OfParseError && re.test(e.message),
      );
    });
  }
  it('parseActions on an empty list', () => assert.throws(() => parseActions(''), OfParseError));
});
