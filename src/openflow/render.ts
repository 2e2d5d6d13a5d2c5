// Renders flows and groups as ovs-ofctl text (add-flows / add-groups file syntax, OpenFlow 1.5).
// The output of dump-flows differs only in cosmetics; src/sim parses both.
import type { Action, FieldRef, Flow, Group, MatchField, PortRef, RegSlice } from './types.js';

const hex = (n: number | bigint): string => '0x' + n.toString(16);

export function renderPort(port: PortRef): string {
  return typeof port === 'number' ? String(port) : port;
}

function regName(slice: RegSlice): string {
  const whole = slice.start === 0 && slice.end === 31;
  return `NXM_NX_REG${slice.reg}[${whole ? '' : `${slice.start}..${slice.end}`}]`;
}

/** Field names for load/move, in the NXM spelling OVS accepts and prints. */
function nxmName(field: FieldRef): string {
  switch (field.kind) {
    case 'reg':
      return regName(field.slice);
    case 'eth_src':
      return 'NXM_OF_ETH_SRC[]';
    case 'eth_dst':
      return 'NXM_OF_ETH_DST[]';
    case 'arp_sha':
      return 'NXM_NX_ARP_SHA[]';
    case 'arp_tha':
      return 'NXM_NX_ARP_THA[]';
    case 'ip_src':
      return 'NXM_OF_IP_SRC[]';
    case 'ip_dst':
      return 'NXM_OF_IP_DST[]';
    case 'arp_spa':
      return 'NXM_OF_ARP_SPA[]';
    case 'arp_tpa':
      return 'NXM_OF_ARP_TPA[]';
    case 'tp_src':
      return 'NXM_OF_TCP_SRC[]';
    case 'tp_dst':
      return 'NXM_OF_TCP_DST[]';
    case 'arp_op':
      return 'NXM_OF_ARP_OP[]';
    case 'ct_mark':
      return 'NXM_NX_CT_MARK[]';
  }
}

function renderCtState(flags: Partial<Record<string, boolean>>): string {
  // A stable order keeps output deterministic.
  const order = ['new', 'est', 'rel', 'rpl', 'inv', 'trk', 'snat', 'dnat'];
  return order
    .filter((f) => flags[f] !== undefined)
    .map((f) => (flags[f] ? '+' : '-') + f)
    .join('');
}

export function renderMatch(match: MatchField[]): string {
  const parts: string[] = [];
  // The protocol keyword goes first, as ovs-ofctl prints it.
  const proto = match.find((m) => m.kind === 'ip_proto');
  const eth = match.find((m) => m.kind === 'eth_type');
  // ovs-ofctl has no igmp keyword: it is ip with nw_proto=2.
  if (proto && proto.kind === 'ip_proto')
    parts.push(proto.value === 'igmp' ? 'ip,nw_proto=2' : proto.value);
  else if (eth && eth.kind === 'eth_type') parts.push(eth.value);
  for (const m of match) {
    switch (m.kind) {
      case 'eth_type':
      case 'ip_proto':
        break;
      case 'in_port':
        parts.push(`in_port=${renderPort(m.port)}`);
        break;
      case 'dl_src':
      case 'dl_dst':
        parts.push(`${m.kind}=${m.mac}`);
        break;
      case 'nw_src':
      case 'nw_dst':
        parts.push(`${m.kind}=${m.cidr}`);
        break;
      case 'tp_src':
      case 'tp_dst':
        parts.push(`${m.kind}=${m.port}`);
        break;
      case 'arp_op':
        parts.push(`arp_op=${m.op}`);
        break;
      case 'arp_spa':
      case 'arp_tpa':
        parts.push(`${m.kind}=${m.ip}`);
        break;
      case 'reg':
        parts.push(`reg${m.reg}=${hex(m.value)}/${hex(m.mask)}`);
        break;
      case 'ct_state':
        parts.push(`ct_state=${renderCtState(m.flags)}`);
        break;
      case 'ct_mark':
        parts.push(`ct_mark=${hex(m.value)}/${hex(m.mask)}`);
        break;
    }
  }
  return parts.join(',');
}

function renderSet(field: FieldRef, value: number | string): string {
  switch (field.kind) {
    case 'reg':
      return `load:${hex(Number(value))}->${regName(field.slice)}`;
    case 'eth_src':
      return `mod_dl_src:${value}`;
    case 'eth_dst':
      return `mod_dl_dst:${value}`;
    case 'ip_src':
      return `mod_nw_src:${value}`;
    case 'ip_dst':
      return `mod_nw_dst:${value}`;
    case 'tp_src':
      return `mod_tp_src:${value}`;
    case 'tp_dst':
      return `mod_tp_dst:${value}`;
    case 'arp_op':
      return `load:${hex(Number(value))}->NXM_OF_ARP_OP[]`;
    case 'arp_sha':
    case 'arp_tha':
    case 'arp_spa':
    case 'arp_tpa':
      return `set_field:${value}->${field.kind}`;
    case 'ct_mark':
      return `load:${hex(Number(value))}->NXM_NX_CT_MARK[]`;
  }
}

function markLoad(value: number, mask: number): string {
  // load:V->NXM_NX_CT_MARK[a..b] writes only the masked bits; masks are contiguous by design.
  if (mask === 0) throw new Error('empty ct_mark mask');
  const start = 31 - Math.clz32(mask & -mask);
  const end = 31 - Math.clz32(mask);
  const shifted = (value & mask) >>> start;
  return `load:${hex(shifted)}->NXM_NX_CT_MARK[${start}..${end}]`;
}

// Shared (frozen) action objects recur across thousands of flows: render each once.
const renderedActions = new WeakMap<Action, string>();

export function renderAction(a: Action): string {
  if (Object.isFrozen(a)) {
    let t = renderedActions.get(a);
    if (t === undefined) {
      t = renderActionUncached(a);
      renderedActions.set(a, t);
    }
    return t;
  }
  return renderActionUncached(a);
}

function renderActionUncached(a: Action): string {
  switch (a.kind) {
    case 'goto_table':
      return `goto_table:${a.table}`;
    case 'resubmit':
      return `resubmit(,${a.table})`;
    case 'output':
      return typeof a.port === 'number'
        ? `output:${a.port}`
        : a.port === 'IN_PORT'
          ? 'in_port'
          : a.port;
    case 'output_reg':
      return `output:${regName(a.slice)}`;
    case 'group':
      return `group:${a.id}`;
    case 'drop':
      return 'drop';
    case 'set':
      return renderSet(a.field, a.value);
    case 'move':
      return `move:${nxmName(a.from)}->${nxmName(a.to)}`;
    case 'ct_clear':
      return 'ct_clear';
    case 'ct': {
      const args: string[] = [];
      if (a.commit) args.push('commit');
      if (a.table !== undefined) args.push(`table=${a.table}`);
      args.push(`zone=${a.zone}`);
      if (a.nat === 'existing') args.push('nat');
      else if (a.nat) {
        const port =
          a.nat.port !== undefined
            ? `:${a.nat.port}`
            : a.nat.portRange
              ? `:${a.nat.portRange[0]}-${a.nat.portRange[1]}`
              : '';
        args.push(`nat(${a.nat.type}=${a.nat.ip}${port})`);
      }
      if (a.setMark) args.push(`exec(${markLoad(a.setMark.value, a.setMark.mask)})`);
      return `ct(${args.join(',')})`;
    }
  }
}

export function renderActions(actions: Action[]): string {
  return actions.length === 0 ? 'drop' : actions.map(renderAction).join(',');
}

const cookieText = new Map<bigint, string>();

function cookieHex(c: bigint): string {
  let t = cookieText.get(c);
  if (t === undefined) {
    t = hex(c);
    if (cookieText.size < 100_000) cookieText.set(c, t);
  }
  return t;
}

export function renderFlow(flow: Flow): string {
  const match = renderMatch(flow.match);
  const head = `table=${flow.table},priority=${flow.priority},cookie=${cookieHex(flow.cookie)}`;
  return `${head}${match ? ',' + match : ''} actions=${renderActions(flow.actions)}`;
}

export function renderGroup(group: Group): string {
  const buckets = group.buckets.map(
    (b) => `bucket=bucket_id:${b.id},weight:${b.weight},actions=${renderActions(b.actions)}`,
  );
  const head = [`group_id=${group.id}`, `type=${group.type}`];
  if (group.hashFields?.length)
    head.push(`selection_method=hash`, `fields(${group.hashFields.join(',')})`);
  return [...head, ...buckets].join(',');
}

/** Groups first, then flows: the order ovs-ofctl needs to load them (see docs/pipeline.md). */
export function renderProgram(program: { groups: Group[]; flows: Flow[] }): {
  groups: string;
  flows: string;
} {
  return {
    groups: program.groups.map(renderGroup).join('\n') + (program.groups.length ? '\n' : ''),
    flows: program.flows.map(renderFlow).join('\n') + (program.flows.length ? '\n' : ''),
  };
}
