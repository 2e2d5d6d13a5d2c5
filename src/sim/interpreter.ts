// An OpenFlow pipeline interpreter with Open vSwitch semantics for the subset svcflow emits.
// Flows are indexed per table by match shape (the set of fields and masks they use), so a lookup
// is one hash probe per shape instead of a scan: the way the OVS classifier does it.
import { renderActions, renderFlow } from '../openflow/render.js';
import type {
  Action,
  FieldRef,
  Flow,
  Group,
  MatchField,
  OpenFlowProgram,
} from '../openflow/types.js';
import { Conntrack, type CtResult } from './conntrack.js';
import {
  ABSENT,
  CS,
  ETH_ARP,
  ETH_IP,
  F,
  PROTO_NUMBER,
  type Packet,
  type State,
  ctStateString,
  endpointOf,
  fromState,
  ipToNum,
  macToNum,
  parseCidr,
  portNumber,
  portRef,
  toState,
} from './packet.js';

// ---------------------------------------------------------------------------------------------
// Classifier

/** Mask value meaning "compare the whole slot" (MACs are 48 bits and do not fit a 32-bit &). */
const EXACT = -1;

interface Cond {
  slot: number;
  mask: number;
  value: number;
}

interface Entry {
  flow: Flow;
  index: number;
}

interface Subtable {
  slots: number[];
  masks: number[];
  maxPriority: number;
  /**
   * Flows by masked value of each slot in turn (nested maps: no key strings to build), each
   * leaf list sorted by priority (highest first), then program order. With no slots: `all`.
   */
  root: Map<number, unknown>;
  all: Entry[];
}

interface TableIndex {
  subtables: Subtable[];
  size: number;
}

const CT_BITS: Record<string, number> = CS;

function fullMask(mask: number): number {
  return mask === 0xffffffff ? EXACT : mask;
}

function condsOf(match: MatchField[]): Cond[] | null {
  const conds: Cond[] = [];
  const add = (slot: number, mask: number, value: number): void => {
    conds.push({ slot, mask, value: mask === EXACT ? value : (value & mask) >>> 0 });
  };
  for (const m of match) {
    switch (m.kind) {
      case 'in_port':
        if (m.port === 'IN_PORT') throw new Error('in_port=IN_PORT is not a valid match');
        add(F.inPort, EXACT, portNumber(m.port));
        break;
      case 'eth_type':
        add(F.ethType, EXACT, m.value === 'ip' ? ETH_IP : ETH_ARP);
        break;
      case 'ip_proto':
        add(F.ipProto, EXACT, PROTO_NUMBER[m.value]);
        break;
      case 'dl_src':
      case 'dl_dst':
        add(m.kind === 'dl_src' ? F.dlSrc : F.dlDst, EXACT, macToNum(m.mac));
        break;
      case 'nw_src':
      case 'nw_dst':
      case 'arp_spa':
      case 'arp_tpa': {
        const c = parseCidr('cidr' in m ? m.cidr : m.ip);
        if (c.len === 0) break;
        const slot = { nw_src: F.nwSrc, nw_dst: F.nwDst, arp_spa: F.arpSpa, arp_tpa: F.arpTpa }[
          m.kind
        ];
        add(slot, fullMask(c.mask), c.addr);
        break;
      }
      case 'tp_src':
      case 'tp_dst':
        add(m.kind === 'tp_src' ? F.tpSrc : F.tpDst, EXACT, m.port);
        break;
      case 'arp_op':
        add(F.arpOp, EXACT, m.op);
        break;
      case 'reg':
        if (m.mask !== 0) add(F.reg0 + m.reg, fullMask(m.mask >>> 0), m.value >>> 0);
        break;
      case 'ct_state': {
        let mask = 0;
        let value = 0;
        for (const [flag, on] of Object.entries(m.flags)) {
          if (on === undefined) continue;
          mask |= CT_BITS[flag];
          if (on) value |= CT_BITS[flag];
        }
        if (mask !== 0) add(F.ctState, mask, value);
        break;
      }
      case 'ct_mark':
        if (m.mask !== 0) add(F.ctMark, fullMask(m.mask >>> 0), m.value >>> 0);
        break;
      default:
        throw new Error(`unknown match field kind "${(m as { kind: string }).kind}"`);
    }
  }
  // Two conditions on one slot (e.g. reg0 twice) merge; contradicting ones never match.
  conds.sort((a, b) => a.slot - b.slot);
  const merged: Cond[] = [];
  for (const c of conds) {
    const prev = merged[merged.length - 1];
    if (!prev || prev.slot !== c.slot) {
      merged.push({ ...c });
      continue;
    }
    if (prev.mask === EXACT || c.mask === EXACT) {
      const exact = prev.mask === EXACT ? prev : c;
      const other = prev.mask === EXACT ? c : prev;
      const ov = other.mask === EXACT ? other.value : (exact.value & other.mask) >>> 0;
      if (ov !== other.value) return null;
      prev.mask = EXACT;
      prev.value = exact.value;
      continue;
    }
    const common = prev.mask & c.mask;
    if ((prev.value & common) !== (c.value & common)) return null;
    prev.value = (prev.value | c.value) >>> 0;
    prev.mask = fullMask((prev.mask | c.mask) >>> 0);
  }
  return merged;
}

function buildTable(entries: Entry[]): TableIndex {
  const byShape = new Map<string, Subtable>();
  const lists = new Map<Subtable, Entry[][]>();
  let size = 0;
  for (const e of entries) {
    const conds = condsOf(e.flow.match);
    if (!conds) continue;
    let shape = '';
    for (const c of conds) shape += `${c.slot}/${c.mask};`;
    let st = byShape.get(shape);
    if (!st) {
      st = {
        slots: conds.map((c) => c.slot),
        masks: conds.map((c) => c.mask),
        maxPriority: -1,
        root: new Map(),
        all: [],
      };
      byShape.set(shape, st);
      lists.set(st, []);
    }
    let list: Entry[] | undefined = st.all;
    if (conds.length > 0) {
      let node = st.root;
      for (let i = 0; i < conds.length - 1; i++) {
        let next = node.get(conds[i].value) as Map<number, unknown> | undefined;
        if (!next) node.set(conds[i].value, (next = new Map()));
        node = next;
      }
      const last = conds[conds.length - 1].value;
      list = node.get(last) as Entry[] | undefined;
      if (!list) {
        node.set(last, (list = []));
        lists.get(st)!.push(list);
      }
    }
    if (list.length === 0) list.push(e);
    else {
      // OVS add-flows replaces a flow with the same table, priority and match: the last one wins.
      const same = list.findIndex((x) => x.flow.priority === e.flow.priority);
      if (same >= 0) {
        list[same] = e;
        continue;
      }
      list.push(e);
    }
    size++;
    if (e.flow.priority > st.maxPriority) st.maxPriority = e.flow.priority;
  }
  const subtables = [...byShape.values()].sort((a, b) => b.maxPriority - a.maxPriority);
  for (const st of subtables)
    for (const list of [st.all, ...lists.get(st)!])
      if (list.length > 1)
        list.sort((a, b) => b.flow.priority - a.flow.priority || a.index - b.index);
  return { subtables, size };
}

interface LookupResult {
  entry: Entry;
  /** Another flow of the same priority also matched: OVS leaves the choice undefined. */
  ambiguous: Flow | null;
}

function lookup(t: TableIndex, s: State): LookupResult | null {
  let best: Entry | null = null;
  let ambiguous: Flow | null = null;
  for (const st of t.subtables) {
    if (best && st.maxPriority < best.flow.priority) break;
    let list: Entry[] | undefined = st.all;
    const n = st.slots.length;
    if (n > 0) {
      let node: unknown = st.root;
      for (let i = 0; i < n && node !== undefined; i++) {
        const v = s[st.slots[i]];
        if (v === ABSENT) {
          node = undefined;
          break;
        }
        const m = st.masks[i];
        node = (node as Map<number, unknown>).get(m === EXACT ? v : (v & m) >>> 0);
      }
      list = node as Entry[] | undefined;
    }
    if (!list || list.length === 0) continue;
    const cand = list[0];
    if (!best || cand.flow.priority > best.flow.priority) {
      best = cand;
      ambiguous = null;
    } else if (cand.flow.priority === best.flow.priority) {
      ambiguous = cand.index < best.index ? best.flow : cand.flow;
      if (cand.index < best.index) best = cand;
    }
  }
  return best && { entry: best, ambiguous };
}

// ---------------------------------------------------------------------------------------------
// Compiled program

interface CompiledGroup {
  group: Group;
  totalWeight: number;
  /** selection_method=hash: the slots hashed, each with the IP protocol it needs (or -1). */
  hash: { slot: number; proto: number }[] | null;
  /** A hash field we do not know, reported when the group is used. */
  badField?: string;
}

const HASH_FIELDS: Record<string, { slot: number; proto: number }> = {
  ip_src: { slot: F.nwSrc, proto: -1 },
  nw_src: { slot: F.nwSrc, proto: -1 },
  ip_dst: { slot: F.nwDst, proto: -1 },
  nw_dst: { slot: F.nwDst, proto: -1 },
  ip_proto: { slot: F.ipProto, proto: -1 },
  nw_proto: { slot: F.ipProto, proto: -1 },
  tcp_src: { slot: F.tpSrc, proto: PROTO_NUMBER.tcp },
  tcp_dst: { slot: F.tpDst, proto: PROTO_NUMBER.tcp },
  udp_src: { slot: F.tpSrc, proto: PROTO_NUMBER.udp },
  udp_dst: { slot: F.tpDst, proto: PROTO_NUMBER.udp },
  sctp_src: { slot: F.tpSrc, proto: PROTO_NUMBER.sctp },
  sctp_dst: { slot: F.tpDst, proto: PROTO_NUMBER.sctp },
};

function compileGroup(group: Group): CompiledGroup {
  const totalWeight = group.buckets.reduce((sum, b) => sum + Math.max(0, b.weight), 0);
  if (!group.hashFields?.length) return { group, totalWeight, hash: null };
  const bad = group.hashFields.find((f) => !HASH_FIELDS[f]);
  return {
    group,
    totalWeight,
    hash: group.hashFields.filter((f) => HASH_FIELDS[f]).map((f) => HASH_FIELDS[f]),
    badField: bad,
  };
}

export interface CompiledProgram {
  program: OpenFlowProgram;
  tables: Map<number, TableIndex>;
  groups: Map<number, CompiledGroup>;
}

/** Indexes a program once; simulate() can then run any number of packets over it. */
export function compileProgram(program: OpenFlowProgram): CompiledProgram {
  const perTable = new Map<number, Entry[]>();
  program.flows.forEach((flow, index) => {
    let list = perTable.get(flow.table);
    if (!list) perTable.set(flow.table, (list = []));
    list.push({ flow, index });
  });
  const tables = new Map<number, TableIndex>();
  for (const [n, entries] of perTable) tables.set(n, buildTable(entries));
  const groups = new Map<number, CompiledGroup>();
  for (const group of program.groups) groups.set(group.id, compileGroup(group));
  return { program, tables, groups };
}

// ---------------------------------------------------------------------------------------------
// Tracing and results

export interface PacketSummary {
  src: string;
  dst: string;
  ct: string;
  zone: number;
  mark: number;
}

interface EventBase {
  /** Which instance of the packet: 0 is the injected one; forks and recirculations get new ids. */
  path: number;
  /** How many recirculations this instance has been through. */
  recirc: number;
}

export type TraceEvent =
  | (EventBase & {
      kind: 'table';
      depth: number;
      table: number;
      /** The matched flow, or null for a table miss (the packet is dropped). */
      flow: Flow | null;
      ambiguous?: Flow;
      /** The packet after this flow's actions (before a goto_table continues elsewhere). */
      packet: PacketSummary;
    })
  | (EventBase & {
      kind: 'ct';
      zone: number;
      commit: boolean;
      table?: number;
      nat: boolean;
      state: string;
      mark: number;
      note?: string;
      packet: PacketSummary;
    })
  | (EventBase & { kind: 'recirc'; from: number; table: number; packet: PacketSummary })
  | (EventBase & {
      kind: 'group';
      id: number;
      bucket: number | null;
      /** 'dp_hash': OVS's default method, chosen after a datapath recirculation. */
      method: 'hash' | 'dp_hash';
      packet: PacketSummary;
    })
  | (EventBase & { kind: 'output'; port: number | 'LOCAL'; packet: PacketSummary })
  | (EventBase & { kind: 'skip'; port: number | 'LOCAL'; reason: string })
  | (EventBase & { kind: 'error'; message: string });

export interface Output {
  port: number | 'LOCAL';
  packet: Packet;
  path: number;
  recirc: number;
  /** Registers at output time (reg0..reg15), for checks on pipeline metadata. */
  regs: number[];
}

export type Verdict = 'output' | 'drop' | 'duplicate' | 'error';

export interface SimResult {
  /** error > duplicate (more than one output) > output > drop. */
  verdict: Verdict;
  outputs: Output[];
  error?: string;
  /** Table lookups where two flows of equal priority matched. */
  ambiguities: { table: number; chosen: Flow; other: Flow }[];
  trace: TraceEvent[];
}

export interface SimOptions {
  /** Connection tracking state; updated in place. A fresh table if absent. */
  conntrack?: Conntrack;
  /** Time in seconds, for conntrack timeouts. */
  now?: number;
  /** Pick a select-group bucket (by index) instead of hashing; undefined falls back to hashing. */
  chooseBucket?: (
    groupId: number,
    buckets: number,
    packet: State,
    group: Group,
  ) => number | undefined;
  /** Record trace events (default true). */
  trace?: boolean;
  /** The bridge's ports: output to any other port is dropped. Unset: every port exists. */
  ports?: ReadonlySet<number | 'LOCAL'>;
  /** Nesting limit for resubmit/goto (OVS: 64). */
  maxDepth?: number;
  /** Table lookups per packet instance (OVS: 64 × 64). */
  maxResubmits?: number;
  /** Recirculations per packet (the userspace datapath drops after 6). */
  maxRecirc?: number;
  /** Initial registers (reg0..), e.g. for tests entering mid-pipeline. */
  regs?: number[];
  /** Table to start in (default 0). */
  startTable?: number;
}

class SimError extends Error {}

interface Thread {
  s: State;
  path: number;
  recirc: number;
  /** Table lookups so far in this datapath pass (reset by recirculation). */
  lookups: number;
  /**
   * Header slots whose bytes differ from what flow matching sees: a ct(nat) that the pipeline
   * went on past translated the packet in the datapath, but OVS keeps matching the rest of the
   * pass on the untranslated headers. Outputs and later ct actions see these values.
   */
  wire: Map<number, number> | null;
}

const NAT_SLOTS = [F.nwSrc, F.nwDst, F.tpSrc, F.tpDst];

/** The packet as it really is in the datapath. */
function onWire(th: Thread): State {
  if (!th.wire) return th.s;
  const w = th.s.slice();
  for (const [slot, v] of th.wire) w[slot] = v;
  return w;
}

interface Ctx {
  prog: CompiledProgram;
  ct: Conntrack;
  now: number;
  opts: SimOptions;
  maxDepth: number;
  maxResubmits: number;
  maxRecirc: number;
  trace: TraceEvent[] | null;
  outputs: Output[];
  ambiguities: SimResult['ambiguities'];
  nextPath: number;
}

function summary(s: State): PacketSummary {
  return {
    src: endpointOf(s, 'src'),
    dst: endpointOf(s, 'dst'),
    ct: ctStateString(s[F.ctState]),
    zone: s[F.ctZone],
    mark: s[F.ctMark],
  };
}

// ---------------------------------------------------------------------------------------------
// Fields

function regMask(start: number, end: number): number {
  const width = end - start + 1;
  return (width === 32 ? 0xffffffff : ((1 << width) - 1) << start) >>> 0;
}

const FIELD_SLOT: Record<Exclude<FieldRef['kind'], 'reg'>, number> = {
  eth_src: F.dlSrc,
  eth_dst: F.dlDst,
  arp_sha: F.arpSha,
  arp_tha: F.arpTha,
  ip_src: F.nwSrc,
  ip_dst: F.nwDst,
  arp_spa: F.arpSpa,
  arp_tpa: F.arpTpa,
  tp_src: F.tpSrc,
  tp_dst: F.tpDst,
  arp_op: F.arpOp,
  ct_mark: F.ctMark,
};

function fieldWidth(f: FieldRef): number {
  switch (f.kind) {
    case 'reg':
      return f.slice.end - f.slice.start + 1;
    case 'eth_src':
    case 'eth_dst':
    case 'arp_sha':
    case 'arp_tha':
      return 48;
    case 'tp_src':
    case 'tp_dst':
    case 'arp_op':
      return 16;
    default:
      return 32;
  }
}

function readField(s: State, f: FieldRef): number {
  if (f.kind === 'reg') {
    const { reg, start, end } = f.slice;
    return ((s[F.reg0 + reg] & regMask(start, end)) >>> start) >>> 0;
  }
  const v = s[FIELD_SLOT[f.kind]];
  if (v === ABSENT) throw new SimError(`${f.kind} is not present in this packet`);
  return v;
}

function writeField(th: Thread, f: FieldRef, v: number): void {
  const s = th.s;
  if (f.kind === 'reg') {
    const { reg, start, end } = f.slice;
    const mask = regMask(start, end);
    const slot = F.reg0 + reg;
    s[slot] = ((s[slot] & ~mask) | ((v * 2 ** start) & mask)) >>> 0;
    return;
  }
  if (f.kind === 'ct_mark') throw new SimError('ct_mark can only be written inside ct(commit,…)');
  const slot = FIELD_SLOT[f.kind];
  // OVS refuses such flows (missing prerequisites); here it shows up as an error on the packet.
  if (s[slot] === ABSENT) throw new SimError(`cannot set ${f.kind}: not present in this packet`);
  s[slot] = v;
  // A rewritten field is committed to the datapath: the wire now carries the new value.
  th.wire?.delete(slot);
}

const valueCache = new WeakMap<Action, number>();

function setValue(a: Extract<Action, { kind: 'set' }>): number {
  let v = valueCache.get(a);
  if (v !== undefined) return v;
  const raw = a.value;
  switch (a.field.kind) {
    case 'eth_src':
    case 'eth_dst':
    case 'arp_sha':
    case 'arp_tha':
      v = typeof raw === 'string' ? macToNum(raw) : raw;
      break;
    case 'ip_src':
    case 'ip_dst':
    case 'arp_spa':
    case 'arp_tpa':
      v = typeof raw === 'string' ? ipToNum(raw) : raw >>> 0;
      break;
    default:
      v = typeof raw === 'string' ? Number(raw) : raw;
  }
  if (!Number.isFinite(v)) throw new SimError(`bad value for ${a.field.kind}: ${String(raw)}`);
  valueCache.set(a, v);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Execution

function mix(h: number, v: number): number {
  h = Math.imul(h ^ (v >>> 0), 0x01000193);
  return h ^ (h >>> 15);
}

function finish(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The bucket hash. Our own function, so bucket choices differ from a real bridge, but with the
 * same inputs: `selection_method=hash` hashes its fields (those whose protocol matches); the
 * default method is symmetric and, like OVS's sym_l4, leaves UDP ports out.
 */
function bucketHash(g: CompiledGroup, s: State): number {
  let h = 0x811c9dc5;
  if (g.hash) {
    for (const f of g.hash) if (f.proto < 0 || s[F.ipProto] === f.proto) h = mix(h, s[f.slot]);
    return finish(h);
  }
  const [a, b] = [s[F.nwSrc] >>> 0, s[F.nwDst] >>> 0].sort((x, y) => x - y);
  h = mix(mix(mix(h, a), b), s[F.ipProto]);
  if (s[F.ipProto] === PROTO_NUMBER.tcp || s[F.ipProto] === PROTO_NUMBER.sctp) {
    const [p, q] = [s[F.tpSrc], s[F.tpDst]].sort((x, y) => x - y);
    h = mix(mix(h, p), q);
  }
  return finish(h);
}

function event(ctx: Ctx, e: TraceEvent): void {
  if (ctx.trace) ctx.trace.push(e);
}

function runTable(ctx: Ctx, th: Thread, table: number, depth: number): void {
  if (depth > ctx.maxDepth)
    throw new SimError(`loop: resubmit/goto depth over ${ctx.maxDepth} at table ${table}`);
  if (++th.lookups > ctx.maxResubmits)
    throw new SimError(`loop: more than ${ctx.maxResubmits} table lookups`);
  const t = ctx.prog.tables.get(table);
  const found = t ? lookup(t, th.s) : null;
  const ev: TraceEvent | null = ctx.trace
    ? {
        kind: 'table',
        path: th.path,
        recirc: th.recirc,
        depth,
        table,
        flow: found ? found.entry.flow : null,
        packet: summary(th.s),
      }
    : null;
  if (ev) ctx.trace!.push(ev);
  if (!found) return; // table miss: drop
  const flow = found.entry.flow;
  if (found.ambiguous) {
    ctx.ambiguities.push({ table, chosen: flow, other: found.ambiguous });
    if (ev && ev.kind === 'table') ev.ambiguous = found.ambiguous;
  }
  const goto = execActions(ctx, th, flow.actions, depth, table, false);
  if (ev && ev.kind === 'table') ev.packet = summary(th.s);
  if (goto !== null) runTable(ctx, th, goto, depth + 1);
}

/** Runs an action list; returns the goto_table target, which OpenFlow runs after the list. */
function execActions(
  ctx: Ctx,
  th: Thread,
  actions: readonly Action[],
  depth: number,
  table: number,
  inBucket: boolean,
): number | null {
  let goto: number | null = null;
  for (const a of actions) {
    switch (a.kind) {
      case 'goto_table':
        if (inBucket) throw new SimError('goto_table is not allowed in a group bucket');
        if (a.table <= table)
          throw new SimError(`goto_table:${a.table} from table ${table} must go forward`);
        goto = a.table;
        break;
      case 'resubmit':
        runTable(ctx, th, a.table, depth + 1);
        break;
      case 'output':
        output(
          ctx,
          th,
          a.port === 'IN_PORT' ? th.s[F.inPort] : portNumber(a.port),
          a.port === 'IN_PORT',
        );
        break;
      case 'output_reg':
        output(ctx, th, readField(th.s, { kind: 'reg', slice: a.slice }), false);
        break;
      case 'group':
        group(ctx, th, a.id, depth);
        break;
      case 'drop':
        break;
      case 'set':
        writeField(th, a.field, setValue(a));
        break;
      case 'move': {
        if (fieldWidth(a.from) !== fieldWidth(a.to))
          throw new SimError(`move between fields of different widths`);
        writeField(th, a.to, readField(th.s, a.from));
        break;
      }
      case 'ct':
        conntrack(ctx, th, a);
        break;
      case 'ct_clear':
        th.s[F.ctState] = 0;
        th.s[F.ctMark] = 0;
        th.s[F.ctZone] = 0;
        break;
      default:
        throw new SimError(`unknown action kind "${(a as { kind: string }).kind}"`);
    }
  }
  return goto;
}

function output(ctx: Ctx, th: Thread, port: number, viaInPort: boolean): void {
  const s = th.s;
  const ref = portRef(port);
  // OVS never sends a packet back where it came from unless the action says IN_PORT.
  if (port === s[F.inPort] && !viaInPort) {
    event(ctx, { kind: 'skip', path: th.path, recirc: th.recirc, port: ref, reason: 'in_port' });
    return;
  }
  if (port === 0 || (ctx.opts.ports && !ctx.opts.ports.has(ref))) {
    event(ctx, { kind: 'skip', path: th.path, recirc: th.recirc, port: ref, reason: 'no port' });
    return;
  }
  const wire = onWire(th);
  ctx.outputs.push({
    port: ref,
    packet: fromState(wire),
    path: th.path,
    recirc: th.recirc,
    regs: s.slice(F.reg0, F.reg0 + 16),
  });
  event(ctx, {
    kind: 'output',
    path: th.path,
    recirc: th.recirc,
    port: ref,
    packet: summary(wire),
  });
}

function group(ctx: Ctx, th: Thread, id: number, depth: number): void {
  const g = ctx.prog.groups.get(id);
  if (!g) throw new SimError(`group ${id} does not exist`);
  if (g.badField) throw new SimError(`group ${id}: unknown hash field "${g.badField}"`);
  const buckets = g.group.buckets;
  let index: number | null = null;
  const forced = ctx.opts.chooseBucket?.(id, buckets.length, th.s, g.group);
  if (forced !== undefined) {
    if (forced < 0 || forced >= buckets.length)
      throw new SimError(`forced bucket ${forced} out of range for group ${id}`);
    index = forced;
  } else if (g.totalWeight > 0) {
    let r = bucketHash(g, th.s) % g.totalWeight;
    for (let i = 0; i < buckets.length; i++) {
      r -= Math.max(0, buckets[i].weight);
      if (r < 0) {
        index = i;
        break;
      }
    }
  }
  event(ctx, {
    kind: 'group',
    path: th.path,
    recirc: th.recirc,
    id,
    bucket: index,
    method: g.hash ? 'hash' : 'dp_hash',
    packet: summary(th.s),
  });
  if (index === null) return; // an empty select group drops
  // Bucket actions work on a copy: OVS restores the packet after a group, like a clone.
  const copy: Thread = { ...th, s: th.s.slice(), wire: th.wire && new Map(th.wire) };
  if (!g.hash) {
    // The default method picks the bucket in the datapath (hash, then recirculate and match
    // dp_hash): one more recirculation, which counts against the datapath's limit.
    if (th.recirc + 1 > ctx.maxRecirc)
      throw new SimError(
        `loop: more than ${ctx.maxRecirc} recirculations (dp_hash of group ${id})`,
      );
    copy.recirc = th.recirc + 1;
  }
  execActions(ctx, copy, buckets[index].actions, depth + 1, -1, true);
  th.lookups = copy.lookups;
}

function conntrack(ctx: Ctx, th: Thread, a: Extract<Action, { kind: 'ct' }>): void {
  if (!a.commit && ((a.nat !== undefined && a.nat !== 'existing') || a.setMark))
    throw new SimError('ct with nat(…) or exec(…) needs commit: OVS rejects such a flow');
  // Conntrack gets the real packet, including an earlier translation matching did not see.
  const w = onWire(th);
  const icmp = w[F.ipProto] === PROTO_NUMBER.icmp;
  const prior = w[F.ctState];
  const res: CtResult = ctx.ct.execute(
    {
      isIp: w[F.ethType] === ETH_IP,
      proto: w[F.ipProto],
      src: w[F.nwSrc],
      dst: w[F.nwDst],
      sport: icmp ? w[F.icmpId] : w[F.tpSrc] === ABSENT ? 0 : w[F.tpSrc],
      dport: icmp ? w[F.icmpId] : w[F.tpDst] === ABSENT ? 0 : w[F.tpDst],
      tcpFlags: w[F.tcpFlags],
    },
    {
      zone: a.zone,
      commit: a.commit,
      nat: a.nat,
      setMark: a.setMark,
      alreadyNated: (prior & (CS.snat | CS.dnat)) !== 0 && w[F.ctZone] === a.zone,
    },
    ctx.now,
  );
  // The instance that conntrack hands back: translated, with the ct fields set.
  const after = w === th.s ? w.slice() : w;
  if (res.rewrite) {
    after[F.nwSrc] = res.rewrite.src;
    after[F.nwDst] = res.rewrite.dst;
    if (after[F.tpSrc] !== ABSENT) after[F.tpSrc] = res.rewrite.sport;
    if (after[F.tpDst] !== ABSENT) after[F.tpDst] = res.rewrite.dport;
  }
  after[F.ctState] = res.state;
  after[F.ctMark] = res.mark;
  after[F.ctZone] = a.zone;
  event(ctx, {
    kind: 'ct',
    path: th.path,
    recirc: th.recirc,
    zone: a.zone,
    commit: a.commit,
    table: a.table,
    nat: res.rewrite !== undefined,
    state: ctStateString(res.state),
    mark: res.mark,
    note: res.note,
    packet: summary(after),
  });

  // The datapath translates the packet in place. Whatever follows the ct action runs on those
  // bytes, but flow matching for the rest of this pass still sees the untranslated headers and
  // no ct_* fields (checked against ovs-vswitchd 3.1, userspace datapath).
  if (res.rewrite) {
    for (const slot of NAT_SLOTS) {
      if (after[slot] === th.s[slot]) th.wire?.delete(slot);
      else (th.wire ??= new Map()).set(slot, after[slot]);
    }
  }
  const s = th.s;
  s[F.ctState] = 0;
  s[F.ctMark] = 0;
  s[F.ctZone] = 0;

  if (a.table !== undefined) {
    if (th.recirc + 1 > ctx.maxRecirc)
      throw new SimError(`loop: more than ${ctx.maxRecirc} recirculations`);
    const rec: Thread = {
      s: after,
      path: ctx.nextPath++,
      recirc: th.recirc + 1,
      lookups: 0,
      wire: null,
    };
    event(ctx, {
      kind: 'recirc',
      path: rec.path,
      recirc: rec.recirc,
      from: th.path,
      table: a.table,
      packet: summary(after),
    });
    runTable(ctx, rec, a.table, 0);
  }
}

/**
 * Sends one packet into a bridge at `inPort` (a number or 'LOCAL') and runs it through the
 * pipeline, recirculations included. Conntrack state in `opts.conntrack` is updated in place.
 */
export function simulate(
  prog: CompiledProgram,
  inPort: number | 'LOCAL',
  packet: Packet,
  opts: SimOptions = {},
): SimResult {
  const ctx: Ctx = {
    prog,
    ct: opts.conntrack ?? new Conntrack(),
    now: opts.now ?? 0,
    opts,
    maxDepth: opts.maxDepth ?? 64,
    maxResubmits: opts.maxResubmits ?? 64 * 64,
    maxRecirc: opts.maxRecirc ?? 6,
    trace: opts.trace === false ? null : [],
    outputs: [],
    ambiguities: [],
    nextPath: 1,
  };
  const s = toState(packet, portNumber(inPort));
  if (opts.regs) opts.regs.forEach((v, i) => (s[F.reg0 + i] = v >>> 0));
  const th: Thread = { s, path: 0, recirc: 0, lookups: 0, wire: null };
  let error: string | undefined;
  try {
    runTable(ctx, th, opts.startTable ?? 0, 0);
  } catch (e) {
    if (!(e instanceof SimError)) throw e;
    error = e.message;
    event(ctx, { kind: 'error', path: th.path, recirc: th.recirc, message: e.message });
  }
  const verdict: Verdict =
    error !== undefined
      ? 'error'
      : ctx.outputs.length > 1
        ? 'duplicate'
        : ctx.outputs.length === 1
          ? 'output'
          : 'drop';
  return {
    verdict,
    outputs: ctx.outputs,
    error,
    ambiguities: ctx.ambiguities,
    trace: ctx.trace ?? [],
  };
}

/** A readable multi-line trace, one line per event, indented by resubmit depth. */
export function formatTrace(trace: readonly TraceEvent[]): string {
  const lines: string[] = [];
  let indent = '';
  for (const e of trace) {
    const tag = `[${e.path}${e.recirc ? ` r${e.recirc}` : ''}]`;
    const pkt = 'packet' in e ? ` | ${e.packet.src} -> ${e.packet.dst} ${e.packet.ct}` : '';
    switch (e.kind) {
      case 'table':
        indent = '  '.repeat(e.depth);
        lines.push(
          `${tag} ${indent}table ${e.table}: ${e.flow ? renderFlow(e.flow) : 'miss → drop'}${pkt}`,
        );
        if (e.ambiguous) lines.push(`${tag} ${indent}  ambiguous with: ${renderFlow(e.ambiguous)}`);
        break;
      case 'ct':
        lines.push(
          `${tag} ${indent}  ct zone=${e.zone}${e.commit ? ' commit' : ''}${e.nat ? ' nat' : ''} → ${e.state} mark=0x${e.mark.toString(16)}${e.note ? ` (${e.note})` : ''}${pkt}`,
        );
        break;
      case 'recirc':
        lines.push(`${tag} recirculate from [${e.from}] to table ${e.table}${pkt}`);
        break;
      case 'group':
        lines.push(
          `${tag} ${indent}  group ${e.id} (${e.method}) → bucket ${e.bucket ?? 'none (drop)'}${pkt}`,
        );
        break;
      case 'output':
        lines.push(`${tag} ${indent}  output ${e.port}${pkt}`);
        break;
      case 'skip':
        lines.push(`${tag} ${indent}  output ${e.port} skipped (${e.reason})`);
        break;
      case 'error':
        lines.push(`${tag} error: ${e.message}`);
        break;
    }
  }
  return lines.join('\n');
}

/** Renders actions of a flow for callers that print their own traces. */
export function describeActions(flow: Flow): string {
  return renderActions(flow.actions);
}
