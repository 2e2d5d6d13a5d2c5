// Small constructors so flow definitions read like the pipeline docs. Values that recur in many
// flows (protocols, table jumps, register loads of small constants) are shared frozen objects:
// a 10k-Service pipeline then allocates (and renders) far less.
import type { Action, CtStateFlag, FieldRef, MatchField, PortRef } from '../openflow/types.js';
import type { Protocol } from '../model/types.js';
import type { RegField } from './registers.js';
import { ipToInt } from '../net/ipv4.js';

function memo<K, V>(make: (k: K) => V): (k: K) => V {
  const cache = new Map<K, V>();
  return (k: K) => {
    let v = cache.get(k);
    if (v === undefined) {
      v = Object.freeze(make(k)) as V;
      cache.set(k, v);
    }
    return v;
  };
}

const IP: MatchField = Object.freeze({ kind: 'eth_type', value: 'ip' });
const ARP: MatchField = Object.freeze({ kind: 'eth_type', value: 'arp' });
const protoOf = memo((p: Protocol | 'igmp'): MatchField => ({
  kind: 'ip_proto',
  value: p === 'igmp' ? 'igmp' : (p.toLowerCase() as 'tcp' | 'udp' | 'sctp'),
}));
const tpDstOf = memo((port: number): MatchField => ({ kind: 'tp_dst', port }));
const ctOf = memo((spec: string): MatchField => {
  // "+new+trk-rpl" → flags
  const flags: Partial<Record<CtStateFlag, boolean>> = {};
  for (const [, sign, name] of spec.matchAll(/([+-])([a-z]+)/g))
    flags[name as CtStateFlag] = sign === '+';
  return { kind: 'ct_state', flags };
});

export const m = {
  inPort: (port: PortRef): MatchField => ({ kind: 'in_port', port }),
  ip: (): MatchField => IP,
  arp: (): MatchField => ARP,
  proto: (p: Protocol | 'igmp'): MatchField => protoOf(p),
  dlSrc: (mac: string): MatchField => ({ kind: 'dl_src', mac }),
  nwSrc: (cidr: string): MatchField => ({ kind: 'nw_src', cidr }),
  nwDst: (cidr: string): MatchField => ({ kind: 'nw_dst', cidr }),
  tpDst: (port: number): MatchField => tpDstOf(port),
  arpOp: (op: number): MatchField => ({ kind: 'arp_op', op }),
  arpTpa: (ip: string): MatchField => ({ kind: 'arp_tpa', ip }),
  ct: (spec: string): MatchField => ctOf(spec),
  ctMark: (value: number, mask: number): MatchField => ({ kind: 'ct_mark', value, mask }),
};

const gotoOf = memo((table: number): Action => ({ kind: 'goto_table', table }));
const resubmitOf = memo((table: number): Action => ({ kind: 'resubmit', table }));
const regFieldOf = memo((f: RegField): FieldRef => ({ kind: 'reg', slice: f.slice }));
const DROP: Action = Object.freeze({ kind: 'drop' });
// Loads into narrow fields (ports, sources, flags) recur: share them like matches.
const narrowLoads = new Map<RegField, Map<number, Action>>();
function narrowLoad(f: RegField, value: number): Action {
  let cache = narrowLoads.get(f);
  if (!cache) narrowLoads.set(f, (cache = new Map()));
  let act = cache.get(value);
  if (!act)
    cache.set(value, (act = Object.freeze({ kind: 'set', field: regFieldOf(f), value }) as Action));
  return act;
}
const namedField = memo((kind: FieldRef['kind']): FieldRef => ({ kind }) as FieldRef);
const moveOf = memo((spec: string): Action => {
  const [from, to] = spec.split('>') as FieldRef['kind'][];
  return { kind: 'move', from: namedField(from), to: namedField(to) };
});

export const a = {
  goto: (table: number): Action => gotoOf(table),
  resubmit: (table: number): Action => resubmitOf(table),
  output: (port: PortRef): Action => ({ kind: 'output', port }),
  drop: (): Action => DROP,
  group: (id: number): Action => ({ kind: 'group', id }),
  load: (f: RegField, value: number): Action =>
    f.slice.end - f.slice.start < 16
      ? narrowLoad(f, value)
      : { kind: 'set', field: regFieldOf(f), value },
  set: (field: FieldRef['kind'], value: string | number): Action => ({
    kind: 'set',
    field: namedField(field),
    value,
  }),
  move: (from: FieldRef['kind'], to: FieldRef['kind']): Action => moveOf(`${from}>${to}`),
  outputReg: (f: RegField): Action => ({ kind: 'output_reg', slice: f.slice }),
};

export const ipNum = ipToInt;
