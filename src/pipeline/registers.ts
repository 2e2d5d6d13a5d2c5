// Register fields and conntrack marks, each with a name. Flows never spell raw bit ranges.
import type { MatchField, RegSlice } from '../openflow/types.js';

export interface RegField {
  name: string;
  slice: RegSlice;
  doc: string;
}

const field = (name: string, reg: number, start: number, end: number, doc: string): RegField => ({
  name,
  slice: { reg, start, end },
  doc,
});

export const PacketSource = field('PacketSource', 0, 0, 3, 'where the packet entered the bridge');
export const Hairpin = field(
  'Hairpin',
  0,
  8,
  8,
  '1: a pod reached itself through a Service; the packet leaves by the port it came in',
);
export const TargetPort = field('TargetPort', 1, 0, 31, 'ofport chosen by L3Forwarding');
export const EndpointIP = field('EndpointIP', 3, 0, 31, 'endpoint IPv4 chosen by a select group');
export const EndpointPort = field(
  'EndpointPort',
  4,
  0,
  15,
  'endpoint port chosen by a select group',
);
export const EndpointChosen = field(
  'EndpointChosen',
  4,
  16,
  16,
  '1 when session affinity chose the endpoint',
);
export const NodePortDirection = field(
  'NodePortDirection',
  8,
  0,
  15,
  'NodePort traffic: 1 request, 2 reply',
);

export const REG_FIELDS: readonly RegField[] = [
  PacketSource,
  Hairpin,
  TargetPort,
  EndpointIP,
  EndpointPort,
  EndpointChosen,
  NodePortDirection,
];

/** PacketSource values (the design notes' reg0 marks). */
export const Source = { tunnel: 0, gateway: 1, localPod: 2, uplink: 4, bridge: 5 } as const;
export const Direction = { request: 1, reply: 2 } as const;

/** ct_mark bits in the service zone. */
export const ServiceCtMark = {
  value: 0x1,
  mask: 0x1,
  doc: 'connection was DNATed to a Service endpoint',
};

function sliceMask(slice: RegSlice): number {
  const width = slice.end - slice.start + 1;
  return (width === 32 ? 0xffffffff : ((1 << width) - 1) << slice.start) >>> 0;
}

// Fields of at most 16 bits take few distinct values (sources, ports, directions): their
// matches are shared, frozen objects. Wide fields (IP addresses) are built each time.
const sharedMatches = new Map<RegField, Map<number, MatchField>>();

/** Match a named register field against a value. */
export function regMatch(f: RegField, value: number): MatchField {
  const narrow = f.slice.end - f.slice.start < 16;
  let cache = narrow ? sharedMatches.get(f) : undefined;
  const hit = cache?.get(value);
  if (hit) return hit;
  const made: MatchField = {
    kind: 'reg',
    reg: f.slice.reg,
    value: (value << f.slice.start) >>> 0,
    mask: sliceMask(f.slice),
  };
  if (narrow) {
    if (!cache) sharedMatches.set(f, (cache = new Map()));
    cache.set(value, Object.freeze(made));
  }
  return made;
}
