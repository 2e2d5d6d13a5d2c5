// Parses ovs-ofctl text back into Flow/Group values: both the add-flows syntax render.ts writes
// and what `ovs-ofctl -O OpenFlow15 dump-flows` / `dump-groups` print (statistics, set_field
// spellings, OXM names). Anything we do not model is an error that names it: a silently
// skipped match field or action would make the simulator answer for a different pipeline.
import type {
  Action,
  CtStateFlag,
  FieldRef,
  Flow,
  Group,
  GroupBucket,
  MatchField,
  NatSpec,
  OpenFlowProgram,
  PortRef,
  RegSlice,
} from './types.js';

export class OfParseError extends Error {
  constructor(message: string, text?: string) {
    super(text === undefined ? message : `${message} (in "${text}")`);
    this.name = 'OfParseError';
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Splits on commas that are not inside parentheses. */
export function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
    if (depth < 0) throw new OfParseError('unbalanced parentheses', text);
  }
  if (depth !== 0) throw new OfParseError('unbalanced parentheses', text);
  const last = text.slice(start).trim();
  if (last !== '' || out.length > 0) out.push(last);
  return out.filter((s) => s !== '');
}

function parseUint(text: string, what: string, max = 0xffffffff): number {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) throw new OfParseError(`bad ${what} "${text}"`);
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n > max) throw new OfParseError(`${what} out of range: ${text}`);
  return n;
}

function parseBig(text: string, what: string): bigint {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) throw new OfParseError(`bad ${what} "${text}"`);
  return BigInt(t);
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function checkIp(text: string): string {
  const m = IPV4.exec(text);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new OfParseError(`bad IPv4 "${text}"`);
  return text;
}

function ipFromNumber(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function ipToNumber(ip: string): number {
  return checkIp(ip)
    .split('.')
    .reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
}

/** "10.0.0.0/24", "10.0.0.1", or dotted masks "10.0.0.0/255.255.255.0" → prefix form. */
function parseCidr(text: string): string {
  const [addr, mask] = text.split('/');
  checkIp(addr);
  if (mask === undefined) return addr;
  let len: number;
  if (/^\d+$/.test(mask)) len = Number(mask);
  else {
    const m = ipToNumber(mask);
    len = m === 0 ? 0 : 32 - (31 - Math.clz32(m & -m));
    const expect = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (m !== expect) throw new OfParseError(`non-contiguous IP mask "${text}"`);
  }
  if (len > 32) throw new OfParseError(`bad prefix length "${text}"`);
  return len === 32 ? addr : `${addr}/${len}`;
}

function checkMac(text: string): string {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) throw new OfParseError(`bad MAC "${text}"`);
  return text.toLowerCase();
}

function macFromNumber(n: bigint): string {
  const hex = n.toString(16).padStart(12, '0');
  if (hex.length > 12) throw new OfParseError(`MAC value too wide: 0x${hex}`);
  return hex.match(/../g)!.join(':');
}

function parsePort(text: string): PortRef {
  const t = text.trim();
  if (t === 'LOCAL') return 'LOCAL';
  if (t === 'IN_PORT' || t === 'in_port') return 'IN_PORT';
  return parseUint(t, 'port');
}

/** Contiguous mask → [start, end]; throws for holes. */
function maskRange(mask: number, text: string): [number, number] {
  if (mask === 0) throw new OfParseError('empty mask', text);
  const start = 31 - Math.clz32(mask & -mask);
  const end = 31 - Math.clz32(mask);
  const width = end - start + 1;
  const expect = (width === 32 ? 0xffffffff : ((1 << width) - 1) << start) >>> 0;
  if (mask >>> 0 !== expect) throw new OfParseError('non-contiguous mask', text);
  return [start, end];
}

// ---------------------------------------------------------------------------------------------
// Matches

const PROTO_KEYWORDS: Record<string, MatchField[]> = {
  ip: [{ kind: 'eth_type', value: 'ip' }],
  arp: [{ kind: 'eth_type', value: 'arp' }],
  tcp: [{ kind: 'ip_proto', value: 'tcp' }],
  udp: [{ kind: 'ip_proto', value: 'udp' }],
  sctp: [{ kind: 'ip_proto', value: 'sctp' }],
  icmp: [{ kind: 'ip_proto', value: 'icmp' }],
  igmp: [{ kind: 'ip_proto', value: 'igmp' }],
};

const PROTO_BY_NUMBER: Record<number, 'tcp' | 'udp' | 'sctp' | 'icmp' | 'igmp'> = {
  1: 'icmp',
  2: 'igmp',
  6: 'tcp',
  17: 'udp',
  132: 'sctp',
};

const CT_FLAGS: readonly CtStateFlag[] = ['new', 'est', 'rel', 'rpl', 'inv', 'trk', 'snat', 'dnat'];

function parseCtState(text: string): Partial<Record<CtStateFlag, boolean>> {
  const flags: Partial<Record<CtStateFlag, boolean>> = {};
  const re = /([+-])([a-z]+)/g;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index !== consumed) break;
    consumed = re.lastIndex;
    const name = m[2] as CtStateFlag;
    if (!CT_FLAGS.includes(name)) throw new OfParseError(`unknown ct_state flag "${m[2]}"`, text);
    flags[name] = m[1] === '+';
  }
  if (consumed !== text.length || consumed === 0)
    throw new OfParseError(`unsupported ct_state "${text}"`);
  return flags;
}

function parseValueMask(text: string, what: string): { value: number; mask: number } {
  const [v, m] = text.split('/');
  const value = parseUint(v, what);
  const mask = m === undefined ? 0xffffffff : parseUint(m, `${what} mask`);
  return { value: (value & mask) >>> 0, mask };
}

function noMask(value: string, key: string): string {
  if (value.includes('/')) throw new OfParseError(`masked ${key} is not supported`, value);
  return value;
}

/** One `key=value` (or bare keyword) of a match. Returns the fields it stands for. */
function parseMatchItem(item: string): MatchField[] {
  const eq = item.indexOf('=');
  if (eq < 0) {
    const kw = PROTO_KEYWORDS[item];
    if (kw) return kw.map((f) => ({ ...f }));
    throw new OfParseError(`unknown match field "${item}"`);
  }
  const key = item.slice(0, eq).trim();
  const value = item.slice(eq + 1).trim();
  const reg = /^reg(\d+)$/.exec(key);
  if (reg) {
    const n = Number(reg[1]);
    if (n > 15) throw new OfParseError(`unknown match field "${key}"`);
    return [{ kind: 'reg', reg: n, ...parseValueMask(value, key) }];
  }
  switch (key) {
    case 'in_port':
      return [{ kind: 'in_port', port: parsePort(value) }];
    case 'dl_type':
    case 'eth_type': {
      const t = parseUint(value, key, 0xffff);
      if (t === 0x0800) return [{ kind: 'eth_type', value: 'ip' }];
      if (t === 0x0806) return [{ kind: 'eth_type', value: 'arp' }];
      throw new OfParseError(`unsupported ${key}=${value}`);
    }
    case 'nw_proto':
    case 'ip_proto': {
      const p = PROTO_BY_NUMBER[parseUint(value, key, 255)];
      if (!p) throw new OfParseError(`unsupported ${key}=${value}`);
      return [{ kind: 'ip_proto', value: p }];
    }
    case 'dl_src':
    case 'eth_src':
      return [{ kind: 'dl_src', mac: checkMac(noMask(value, key)) }];
    case 'dl_dst':
    case 'eth_dst':
      return [{ kind: 'dl_dst', mac: checkMac(noMask(value, key)) }];
    case 'nw_src':
    case 'ip_src':
      return [{ kind: 'nw_src', cidr: parseCidr(value) }];
    case 'nw_dst':
    case 'ip_dst':
      return [{ kind: 'nw_dst', cidr: parseCidr(value) }];
    case 'tp_src':
    case 'tcp_src':
    case 'udp_src':
    case 'sctp_src':
      return [{ kind: 'tp_src', port: parseUint(noMask(value, key), key, 0xffff) }];
    case 'tp_dst':
    case 'tcp_dst':
    case 'udp_dst':
    case 'sctp_dst':
      return [{ kind: 'tp_dst', port: parseUint(noMask(value, key), key, 0xffff) }];
    case 'arp_op':
      return [{ kind: 'arp_op', op: parseUint(value, key, 0xffff) }];
    case 'arp_spa':
    case 'arp_tpa':
      return [{ kind: key, ip: parseCidr(value) }];
    case 'ct_state':
      return [{ kind: 'ct_state', flags: parseCtState(value) }];
    case 'ct_mark':
      return [{ kind: 'ct_mark', ...parseValueMask(value, key) }];
    default:
      throw new OfParseError(`unknown match field "${key}"`);
  }
}

/**
 * Parses the match part of a flow (no table/priority/cookie). A protocol keyword such as `tcp`
 * becomes ip_proto alone: it implies IPv4, as in ovs-ofctl.
 */
export function parseMatch(text: string): MatchField[] {
  const out: MatchField[] = [];
  for (const item of splitTopLevel(text)) out.push(...parseMatchItem(item));
  return collapseProto(out);
}

/** `ip,nw_proto=6` and `tcp` mean the same; keep the single ip_proto form, first. */
function collapseProto(match: MatchField[]): MatchField[] {
  const proto = match.find((m) => m.kind === 'ip_proto');
  const eth = match.find((m) => m.kind === 'eth_type');
  if (proto && eth && eth.kind === 'eth_type' && eth.value !== 'ip')
    throw new OfParseError(`protocol ${(proto as { value: string }).value} needs IPv4`);
  const head = proto ?? eth;
  const rest = match.filter((m) => m.kind !== 'ip_proto' && m.kind !== 'eth_type');
  return head ? [head, ...rest] : rest;
}

// ---------------------------------------------------------------------------------------------
// Fields written by load/set_field/move

const NXM_FIELDS: Record<string, FieldRef> = {
  NXM_OF_ETH_SRC: { kind: 'eth_src' },
  NXM_OF_ETH_DST: { kind: 'eth_dst' },
  NXM_NX_ARP_SHA: { kind: 'arp_sha' },
  NXM_NX_ARP_THA: { kind: 'arp_tha' },
  NXM_OF_IP_SRC: { kind: 'ip_src' },
  NXM_OF_IP_DST: { kind: 'ip_dst' },
  NXM_OF_ARP_SPA: { kind: 'arp_spa' },
  NXM_OF_ARP_TPA: { kind: 'arp_tpa' },
  NXM_OF_TCP_SRC: { kind: 'tp_src' },
  NXM_OF_TCP_DST: { kind: 'tp_dst' },
  NXM_OF_UDP_SRC: { kind: 'tp_src' },
  NXM_OF_UDP_DST: { kind: 'tp_dst' },
  NXM_OF_ARP_OP: { kind: 'arp_op' },
  NXM_NX_CT_MARK: { kind: 'ct_mark' },
};

const OXM_FIELDS: Record<string, FieldRef> = {
  eth_src: { kind: 'eth_src' },
  dl_src: { kind: 'eth_src' },
  eth_dst: { kind: 'eth_dst' },
  dl_dst: { kind: 'eth_dst' },
  arp_sha: { kind: 'arp_sha' },
  arp_tha: { kind: 'arp_tha' },
  ip_src: { kind: 'ip_src' },
  nw_src: { kind: 'ip_src' },
  ip_dst: { kind: 'ip_dst' },
  nw_dst: { kind: 'ip_dst' },
  arp_spa: { kind: 'arp_spa' },
  arp_tpa: { kind: 'arp_tpa' },
  tcp_src: { kind: 'tp_src' },
  udp_src: { kind: 'tp_src' },
  sctp_src: { kind: 'tp_src' },
  tp_src: { kind: 'tp_src' },
  tcp_dst: { kind: 'tp_dst' },
  udp_dst: { kind: 'tp_dst' },
  sctp_dst: { kind: 'tp_dst' },
  tp_dst: { kind: 'tp_dst' },
  arp_op: { kind: 'arp_op' },
  ct_mark: { kind: 'ct_mark' },
};

const FIELD_WIDTH: Record<Exclude<FieldRef['kind'], 'reg'>, number> = {
  eth_src: 48,
  eth_dst: 48,
  arp_sha: 48,
  arp_tha: 48,
  ip_src: 32,
  ip_dst: 32,
  arp_spa: 32,
  arp_tpa: 32,
  tp_src: 16,
  tp_dst: 16,
  arp_op: 16,
  ct_mark: 32,
};

/** Bit range written or read: `[start, end]` of the named field. */
interface FieldSpan {
  field: FieldRef;
  start: number;
  end: number;
}

/** `NXM_NX_REG3[0..15]`, `NXM_OF_ETH_SRC[]`, `reg3`, `ip_dst`, `NXM_NX_REG4[16]`. */
function parseFieldSpan(text: string): FieldSpan {
  const m = /^([A-Za-z0-9_]+)(?:\[(?:(\d+)(?:\.\.(\d+))?)?\])?$/.exec(text.trim());
  if (!m) throw new OfParseError(`bad field "${text}"`);
  const name = m[1];
  const regM = /^(?:NXM_NX_REG|reg)(\d+)$/.exec(name);
  let field: FieldRef;
  let width: number;
  if (regM) {
    const reg = Number(regM[1]);
    if (reg > 15) throw new OfParseError(`unknown field "${name}"`);
    field = { kind: 'reg', slice: { reg, start: 0, end: 31 } };
    width = 32;
  } else {
    const f = NXM_FIELDS[name] ?? OXM_FIELDS[name];
    if (!f) throw new OfParseError(`unknown field "${name}"`);
    field = { ...f } as FieldRef;
    width = FIELD_WIDTH[f.kind as Exclude<FieldRef['kind'], 'reg'>];
  }
  const start = m[2] === undefined ? 0 : Number(m[2]);
  const end = m[2] === undefined ? width - 1 : m[3] === undefined ? start : Number(m[3]);
  if (end < start || end >= width) throw new OfParseError(`bad bit range in "${text}"`);
  if (field.kind === 'reg') field = { kind: 'reg', slice: { reg: field.slice.reg, start, end } };
  return { field, start, end };
}

function wholeField(span: FieldSpan, text: string): FieldRef {
  if (span.field.kind === 'reg') return span.field;
  const width = FIELD_WIDTH[span.field.kind];
  if (span.start !== 0 || span.end !== width - 1)
    throw new OfParseError(`partial writes to ${span.field.kind} are not supported`, text);
  return span.field;
}

/** A constant for a field: MACs and IPs as strings, the rest as numbers. */
function constantFor(field: FieldRef, text: string): number | string {
  const t = text.trim();
  switch (field.kind) {
    case 'eth_src':
    case 'eth_dst':
    case 'arp_sha':
    case 'arp_tha':
      return t.includes(':') ? checkMac(t) : macFromNumber(parseBig(t, 'MAC'));
    case 'ip_src':
    case 'ip_dst':
    case 'arp_spa':
    case 'arp_tpa':
      return t.includes('.') ? checkIp(t) : ipFromNumber(parseUint(t, 'IPv4'));
    case 'tp_src':
    case 'tp_dst':
    case 'arp_op':
      return parseUint(t, field.kind, 0xffff);
    case 'reg':
    case 'ct_mark':
      return parseUint(t, field.kind);
  }
}

/** `load:V->DST`: V is the value of the destination bit range. */
function parseLoad(body: string, raw: string): Action {
  const arrow = body.indexOf('->');
  if (arrow < 0) throw new OfParseError('load without "->"', raw);
  const span = parseFieldSpan(body.slice(arrow + 2));
  const src = body.slice(0, arrow);
  if (span.field.kind === 'reg') {
    const width = span.end - span.start + 1;
    const value = parseUint(src, 'load value', width === 32 ? 0xffffffff : 2 ** width - 1);
    return { kind: 'set', field: span.field, value };
  }
  const field = wholeField(span, raw);
  return { kind: 'set', field, value: constantFor(field, src) };
}

/** `set_field:V[/M]->FIELD`. Register writes with a mask become a register slice. */
function parseSetField(body: string, raw: string): Action {
  const arrow = body.lastIndexOf('->');
  if (arrow < 0) throw new OfParseError('set_field without "->"', raw);
  const span = parseFieldSpan(body.slice(arrow + 2));
  const src = body.slice(0, arrow);
  if (span.field.kind === 'reg' || span.field.kind === 'ct_mark') {
    const { value, mask } = parseValueMask(src, 'set_field value');
    if (span.field.kind === 'ct_mark') {
      if (mask !== 0xffffffff)
        throw new OfParseError('masked ct_mark writes are only modelled inside ct(exec(…))', raw);
      return { kind: 'set', field: { kind: 'ct_mark' }, value };
    }
    const [start, end] = maskRange(mask, raw);
    const slice: RegSlice = { reg: span.field.slice.reg, start, end };
    return { kind: 'set', field: { kind: 'reg', slice }, value: value >>> start };
  }
  if (src.includes('/')) throw new OfParseError(`masked set_field on ${span.field.kind}`, raw);
  const field = wholeField(span, raw);
  return { kind: 'set', field, value: constantFor(field, src) };
}

function parseMove(body: string, raw: string): Action {
  const arrow = body.indexOf('->');
  if (arrow < 0) throw new OfParseError('move without "->"', raw);
  const from = parseFieldSpan(body.slice(0, arrow));
  const to = parseFieldSpan(body.slice(arrow + 2));
  const fromRef = from.field.kind === 'reg' ? from.field : wholeField(from, raw);
  const toRef = to.field.kind === 'reg' ? to.field : wholeField(to, raw);
  if (from.end - from.start !== to.end - to.start)
    throw new OfParseError('move between fields of different widths', raw);
  return { kind: 'move', from: fromRef, to: toRef };
}

const MOD_FIELDS: Record<string, FieldRef> = {
  mod_dl_src: { kind: 'eth_src' },
  mod_dl_dst: { kind: 'eth_dst' },
  mod_nw_src: { kind: 'ip_src' },
  mod_nw_dst: { kind: 'ip_dst' },
  mod_tp_src: { kind: 'tp_src' },
  mod_tp_dst: { kind: 'tp_dst' },
};

// ---------------------------------------------------------------------------------------------
// ct(…)

function parseNat(text: string): 'existing' | NatSpec {
  if (text === 'nat') return 'existing';
  const m = /^nat\((src|dst)=([^),]+)\)$/.exec(text);
  if (!m) throw new OfParseError(`unsupported nat "${text}" (ranges and flags are not modelled)`);
  const [, type, target] = m;
  const colon = target.indexOf(':');
  const ip = checkIp(colon < 0 ? target : target.slice(0, colon));
  if (colon < 0) return { type: type as 'src' | 'dst', ip };
  const portText = target.slice(colon + 1);
  if (portText.includes('-')) {
    const [lo, hi] = portText.split('-').map((p) => parseUint(p, 'nat port', 0xffff));
    if (lo > hi) throw new OfParseError(`empty nat port range: ${text}`);
    return { type: type as 'src' | 'dst', ip, portRange: [lo, hi] };
  }
  return { type: type as 'src' | 'dst', ip, port: parseUint(portText, 'nat port', 0xffff) };
}

/** Combines the ct_mark writes inside exec(…) into one value/mask. */
function parseExec(body: string, raw: string): { value: number; mask: number } {
  let value = 0;
  let mask = 0;
  for (const item of splitTopLevel(body)) {
    let v: number;
    let m: number;
    if (item.startsWith('load:')) {
      const arrow = item.indexOf('->');
      const span = parseFieldSpan(item.slice(arrow + 2));
      if (arrow < 0 || span.field.kind !== 'ct_mark')
        throw new OfParseError(`unsupported action in ct exec "${item}"`, raw);
      const width = span.end - span.start + 1;
      const bits = width === 32 ? 0xffffffff : 2 ** width - 1;
      m = (bits * 2 ** span.start) >>> 0;
      v = (parseUint(item.slice(5, arrow), 'ct_mark', bits) * 2 ** span.start) >>> 0;
    } else if (item.startsWith('set_field:')) {
      const arrow = item.lastIndexOf('->');
      if (arrow < 0 || item.slice(arrow + 2).trim() !== 'ct_mark')
        throw new OfParseError(`unsupported action in ct exec "${item}"`, raw);
      ({ value: v, mask: m } = parseValueMask(item.slice(10, arrow), 'ct_mark'));
    } else throw new OfParseError(`unsupported action in ct exec "${item}"`, raw);
    value = ((value & ~m) | (v & m)) >>> 0;
    mask = (mask | m) >>> 0;
  }
  if (mask === 0) throw new OfParseError('empty ct exec', raw);
  return { value, mask };
}

function parseCt(body: string, raw: string): Action {
  const ct: Extract<Action, { kind: 'ct' }> = { kind: 'ct', commit: false, zone: 0 };
  for (const item of splitTopLevel(body)) {
    if (item === 'commit') ct.commit = true;
    else if (item.startsWith('table=')) ct.table = parseUint(item.slice(6), 'ct table', 254);
    else if (item.startsWith('zone=')) ct.zone = parseUint(item.slice(5), 'ct zone', 0xffff);
    else if (item === 'nat' || item.startsWith('nat(')) ct.nat = parseNat(item);
    else if (item.startsWith('exec(') && item.endsWith(')'))
      ct.setMark = parseExec(item.slice(5, -1), raw);
    else throw new OfParseError(`unsupported ct argument "${item}"`, raw);
  }
  return ct;
}

// ---------------------------------------------------------------------------------------------
// Actions

function parseAction(item: string): Action {
  if (item === 'drop') return { kind: 'drop' };
  if (item === 'ct_clear') return { kind: 'ct_clear' };
  if (item === 'LOCAL') return { kind: 'output', port: 'LOCAL' };
  if (item === 'IN_PORT' || item === 'in_port') return { kind: 'output', port: 'IN_PORT' };
  if (/^\d+$/.test(item)) return { kind: 'output', port: parseUint(item, 'port') };
  const colon = item.indexOf(':');
  const paren = item.indexOf('(');
  if (paren >= 0 && (colon < 0 || paren < colon)) {
    if (!item.endsWith(')')) throw new OfParseError(`bad action "${item}"`);
    const name = item.slice(0, paren);
    const body = item.slice(paren + 1, -1);
    if (name === 'resubmit') {
      const [port, table, extra] = body.split(',');
      if (extra !== undefined || port.trim() !== '' || table === undefined)
        throw new OfParseError(`only resubmit(,TABLE) is supported: "${item}"`);
      return { kind: 'resubmit', table: parseUint(table, 'resubmit table', 254) };
    }
    if (name === 'ct') return parseCt(body, item);
    throw new OfParseError(`unknown action "${name}"`, item);
  }
  if (colon < 0) throw new OfParseError(`unknown action "${item}"`);
  const name = item.slice(0, colon);
  const body = item.slice(colon + 1);
  switch (name) {
    case 'goto_table':
      return { kind: 'goto_table', table: parseUint(body, 'goto_table', 254) };
    case 'group':
      return { kind: 'group', id: parseUint(body, 'group id') };
    case 'output': {
      if (/^(NXM_NX_REG|reg)\d+/.test(body)) {
        const span = parseFieldSpan(body);
        if (span.field.kind !== 'reg') throw new OfParseError('bad output field', item);
        return { kind: 'output_reg', slice: span.field.slice };
      }
      return { kind: 'output', port: parsePort(body) };
    }
    case 'load':
      return parseLoad(body, item);
    case 'set_field':
      return parseSetField(body, item);
    case 'move':
      return parseMove(body, item);
    case 'resubmit':
      throw new OfParseError(`only resubmit(,TABLE) is supported: "${item}"`);
    default: {
      const field = MOD_FIELDS[name];
      if (!field) throw new OfParseError(`unknown action "${name}"`, item);
      return { kind: 'set', field: { ...field } as FieldRef, value: constantFor(field, body) };
    }
  }
}

/** Parses an action list; `drop` alone is the empty list spelled out, as ovs-ofctl prints it. */
export function parseActions(text: string): Action[] {
  const items = splitTopLevel(text);
  if (items.length === 0) throw new OfParseError('empty action list');
  const actions = items.map(parseAction);
  if (actions.length > 1 && actions.some((a) => a.kind === 'drop'))
    throw new OfParseError('"drop" must not be combined with other actions', text);
  return actions;
}

// ---------------------------------------------------------------------------------------------
// Flows and groups

/** Flow attributes that are not match fields: statistics, timeouts and flags we do not model. */
const IGNORED_KEYS = new Set([
  'duration',
  'n_packets',
  'n_bytes',
  'idle_age',
  'hard_age',
  'idle_timeout',
  'hard_timeout',
  'importance',
]);
const IGNORED_FLAGS = new Set([
  'reset_counts',
  'send_flow_rem',
  'check_overlap',
  'no_packet_counts',
  'no_byte_counts',
]);

/** One flow, in add-flows or dump-flows syntax. */
export function parseFlow(line: string): Flow {
  const text = line.trim();
  const at = /(^|[\s,])actions=/.exec(text);
  if (!at) throw new OfParseError('flow without actions', text);
  const head = text.slice(0, at.index);
  const actionsText = text.slice(at.index + at[0].length);
  const flow: Flow = { table: 0, priority: 32768, cookie: 0n, match: [], actions: [] };
  const match: MatchField[] = [];
  for (const item of head.split(/[\s,]+/).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (IGNORED_FLAGS.has(key) && eq < 0) continue;
    if (IGNORED_KEYS.has(key)) continue;
    if (key === 'table') flow.table = parseUint(value, 'table', 254);
    else if (key === 'priority') flow.priority = parseUint(value, 'priority', 0xffff);
    else if (key === 'cookie') {
      if (value.includes('/')) throw new OfParseError('cookie masks belong to del-flows', text);
      flow.cookie = parseBig(value, 'cookie');
    } else {
      try {
        match.push(...parseMatchItem(item));
      } catch (e) {
        if (e instanceof OfParseError) throw new OfParseError(e.message, text);
        throw e;
      }
    }
  }
  flow.match = collapseProto(match);
  try {
    flow.actions = parseActions(actionsText);
  } catch (e) {
    if (e instanceof OfParseError) throw new OfParseError(e.message, text);
    throw e;
  }
  return flow;
}

/** Lines that are not flows: blank, comments, and dump headers such as `OFPST_FLOW reply …`. */
function isNoise(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#') || /^(OFPST_|NXST_|OFPT_)\w+/.test(t);
}

export function parseFlows(text: string): Flow[] {
  return text
    .split('\n')
    .filter((l) => !isNoise(l))
    .map(parseFlow);
}

function parseBucket(items: string[], raw: string): GroupBucket {
  const bucket: GroupBucket = { id: -1, weight: 1, actions: [] };
  let i = 0;
  for (; i < items.length; i++) {
    const item = items[i];
    if (item.startsWith('bucket_id:')) bucket.id = parseUint(item.slice(10), 'bucket_id');
    else if (item.startsWith('weight:')) bucket.weight = parseUint(item.slice(7), 'weight', 0xffff);
    else if (item.startsWith('watch_port:') || item.startsWith('watch_group:'))
      throw new OfParseError(`unsupported bucket option "${item}"`, raw);
    else break;
  }
  const rest = items.slice(i);
  if (rest.length > 0) {
    if (rest[0].startsWith('actions=')) rest[0] = rest[0].slice(8);
    bucket.actions = parseActions(rest.join(','));
  }
  return bucket;
}

/** One group, in add-groups or dump-groups syntax. Only select groups exist in our pipeline. */
export function parseGroup(line: string): Group {
  const text = line.trim();
  const items = splitTopLevel(text);
  const group: Group = { id: -1, type: 'select', buckets: [] };
  let cur: string[] | null = null;
  const buckets: string[][] = [];
  for (const item of items) {
    if (item.startsWith('bucket=')) {
      cur = [item.slice(7)];
      buckets.push(cur);
    } else if (cur) cur.push(item);
    else {
      const eq = item.indexOf('=');
      const key = eq < 0 ? item : item.slice(0, eq);
      const value = item.slice(eq + 1);
      if (key === 'group_id') group.id = parseUint(value, 'group_id');
      else if (key === 'type') {
        if (value !== 'select') throw new OfParseError(`unsupported group type "${value}"`, text);
      } else if (key === 'cookie') group.cookie = parseBig(value, 'cookie');
      // The selection method changes which bucket a hash picks, never the set of buckets.
      else if (key === 'selection_method' || key === 'selection_method_param') continue;
      else if (key.startsWith('fields(') && key.endsWith(')'))
        group.hashFields = key.slice(7, -1).split(',').filter(Boolean);
      else throw new OfParseError(`unknown group attribute "${key}"`, text);
    }
  }
  if (group.id < 0) throw new OfParseError('group without group_id', text);
  group.buckets = buckets.map((b, idx) => {
    const bucket = parseBucket(
      b.filter((s) => s !== ''),
      text,
    );
    if (bucket.id < 0) bucket.id = idx;
    return bucket;
  });
  return group;
}

export function parseGroups(text: string): Group[] {
  return text
    .split('\n')
    .filter((l) => !isNoise(l))
    .map(parseGroup);
}

export function parseProgram(flowsText: string, groupsText = ''): OpenFlowProgram {
  return { groups: parseGroups(groupsText), flows: parseFlows(flowsText) };
}

// ---------------------------------------------------------------------------------------------
// Canonical forms, for comparing parsed text with the values it came from

const MATCH_ORDER: MatchField['kind'][] = [
  'in_port',
  'eth_type',
  'ip_proto',
  'dl_src',
  'dl_dst',
  'nw_src',
  'nw_dst',
  'tp_src',
  'tp_dst',
  'arp_op',
  'arp_spa',
  'arp_tpa',
  'reg',
  'ct_state',
  'ct_mark',
];
const MATCH_RANK = new Map(MATCH_ORDER.map((k, i) => [k, i * 100]));

/**
 * A match in a fixed order with implied fields removed (ip_proto implies IPv4), so that a
 * compiled flow and its dump-flows text compare equal whatever order ovs-ofctl printed.
 */
export function canonicalMatch(match: MatchField[]): MatchField[] {
  // one pass, no sort when already in order (compiled matches usually are): this runs per flow
  let hasProto = false;
  for (const m of match) if (m.kind === 'ip_proto') hasProto = true;
  const out: MatchField[] = [];
  const ranks: number[] = [];
  let sorted = true;
  for (const m of match) {
    if (hasProto && m.kind === 'eth_type' && m.value === 'ip') continue;
    const c =
      m.kind === 'reg' || m.kind === 'ct_mark' ? { ...m, value: (m.value & m.mask) >>> 0 } : m;
    const r = (MATCH_RANK.get(m.kind) ?? -100) + (m.kind === 'reg' ? m.reg : 0);
    if (ranks.length > 0 && r < ranks[ranks.length - 1]) sorted = false;
    out.push(c);
    ranks.push(r);
  }
  if (sorted) return out;
  // stable, as Array.prototype.sort is
  const idx = out.map((_, i) => i).sort((x, y) => ranks[x] - ranks[y] || x - y);
  return idx.map((i) => out[i]);
}

/** A flow with a canonical match and `[]`/`[drop]` unified, for equality checks. */
export function canonicalFlow(flow: Flow): Flow {
  const actions = flow.actions.length === 0 ? [{ kind: 'drop' } as Action] : flow.actions;
  return { ...flow, match: canonicalMatch(flow.match), actions };
}
