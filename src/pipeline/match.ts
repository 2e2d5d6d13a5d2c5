// Small constructors so flow definitions read like the pipeline docs.
import type { Action, CtStateFlag, FieldRef, MatchField, PortRef } from '../openflow/types.js';
import type { Protocol } from '../model/types.js';
import type { RegField } from './registers.js';
import { ipToInt } from '../net/ipv4.js';

export const m = {
  inPort: (port: PortRef): MatchField => ({ kind: 'in_port', port }),
  ip: (): MatchField => ({ kind: 'eth_type', value: 'ip' }),
  arp: (): MatchField => ({ kind: 'eth_type', value: 'arp' }),
  proto: (p: Protocol | 'igmp'): MatchField => ({
    kind: 'ip_proto',
    value: p === 'igmp' ? 'igmp' : (p.toLowerCase() as 'tcp' | 'udp' | 'sctp'),
  }),
  dlSrc: (mac: string): MatchField => ({ kind: 'dl_src', mac }),
  nwSrc: (cidr: string): MatchField => ({ kind: 'nw_src', cidr }),
  nwDst: (cidr: string): MatchField => ({ kind: 'nw_dst', cidr }),
  tpDst: (port: number): MatchField => ({ kind: 'tp_dst', port }),
  arpOp: (op: number): MatchField => ({ kind: 'arp_op', op }),
  arpTpa: (ip: string): MatchField => ({ kind: 'arp_tpa', ip }),
  ct: (spec: string): MatchField => {
    // "+new+trk-rpl" → flags
    const flags: Partial<Record<CtStateFlag, boolean>> = {};
    for (const [, sign, name] of spec.matchAll(/([+-])([a-z]+)/g)) flags[name as CtStateFlag] = sign === '+';
    return { kind: 'ct_state', flags };
  },
  ctMark: (value: number, mask: number): MatchField => ({ kind: 'ct_mark', value, mask }),
};

export const a = {
  goto: (table: number): Action => ({ kind: 'goto_table', table }),
  resubmit: (table: number): Action => ({ kind: 'resubmit', table }),
  output: (port: PortRef): Action => ({ kind: 'output', port }),
  drop: (): Action => ({ kind: 'drop' }),
  group: (id: number): Action => ({ kind: 'group', id }),
  load: (f: RegField, value: number): Action => ({ kind: 'set', field: { kind: 'reg', slice: f.slice }, value }),
  set: (field: FieldRef['kind'], value: string | number): Action => ({ kind: 'set', field: { kind: field } as FieldRef, value }),
  move: (from: FieldRef['kind'], to: FieldRef['kind']): Action => ({
    kind: 'move',
    from: { kind: from } as FieldRef,
    to: { kind: to } as FieldRef,
  }),
  outputReg: (f: RegField): Action => ({ kind: 'output_reg', slice: f.slice }),
};

export const ipNum = ipToInt;
