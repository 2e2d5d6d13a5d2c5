// Journeys as text and as JSON: the hop-by-hop tables of docs/pipeline.md, from the simulator.
import { renderActions, renderMatch } from '../openflow/render.js';
import type { Flow } from '../openflow/types.js';
import { TABLES } from '../pipeline/tables.js';
import { serverName, type ClusterModel } from './cluster.js';
import type { TraceEvent } from './interpreter.js';
import type { Hop, Journey, Place } from './network.js';
import type { Packet } from './packet.js';
import type { ConnectionResult } from './connection.js';

const TABLE_NAME = new Map<number, string>(TABLES.map((t) => [t.number, t.name]));

export const tableLabel = (n: number) => `${n}${TABLE_NAME.has(n) ? ` ${TABLE_NAME.get(n)}` : ''}`;

/** A flow without table and cookie: what matched and what it did. */
export function flowText(f: Flow): string {
  const m = renderMatch(f.match);
  return `priority=${f.priority}${m ? ',' + m : ''} actions=${renderActions(f.actions)}`;
}

const ep = (ip?: string, port?: number) => `${ip ?? '?'}${port === undefined ? '' : `:${port}`}`;
export const pair = (p: Packet) =>
  p.ethType === 'arp'
    ? `arp ${p.arpOp === 2 ? 'reply' : 'who-has'} ${p.arpTpa} tell ${p.arpSpa}`
    : `(${ep(p.ipSrc, p.tpSrc)}, ${ep(p.ipDst, p.tpDst)})`;

function placeText(model: ClusterModel, p: Place): string {
  const name = serverName(model, p);
  return p.kind === 'pod' ? `pod ${name} (${p.node})` : name;
}

function portText(model: ClusterModel, node: string, port: number | 'LOCAL'): string {
  const n = model.nodes.find((x) => x.name === node);
  if (!n) return String(port);
  if (port === 'LOCAL') return `LOCAL (${n.dp.bridge})`;
  if (port === n.dp.gatewayPort) return `${port} (${n.dp.gatewayInterface})`;
  if (port === n.dp.uplinkPort) return `${port} (uplink)`;
  const pod = n.pods.find((p) => p.ofport === port);
  return pod ? `${port} (pod ${pod.namespace}/${pod.name})` : String(port);
}

/** Where and why a journey ended without arriving: the last dead end on its way. */
export function describeEnd(model: ClusterModel, j: Journey): string {
  if (j.verdict === 'error') return `error: ${j.error}`;
  for (let i = j.hops.length - 1; i >= 0; i--) {
    const h = j.hops[i];
    if (h.kind === 'drop') return `${placeText(model, h.place)}: ${h.reason}`;
    if (h.kind === 'host' && h.verdict.kind === 'drop')
      return `${h.node} host: ${h.verdict.reason}`;
    if (h.kind === 'wire' && h.to.length === 0) return `wire: nobody owns ${h.packet.ethDst}`;
    if (h.kind === 'bridge' && h.result.outputs.length === 0) return `${h.node}: ${bridgeDrop(h)}`;
  }
  return 'dropped';
}

function bridgeDrop(h: Extract<Hop, { kind: 'bridge' }>): string {
  const t = h.result.trace;
  for (let i = t.length - 1; i >= 0; i--) {
    const e = t[i];
    if (e.kind === 'skip') return `output ${e.port} skipped (${e.reason})`;
    if (e.kind === 'group' && e.bucket === null) return `group ${e.id} has no bucket`;
    if (e.kind === 'table')
      return e.flow
        ? `table ${tableLabel(e.table)}: ${flowText(e.flow)}`
        : `table ${tableLabel(e.table)}: miss`;
  }
  return 'dropped in the bridge';
}

function eventLines(e: TraceEvent): string {
  const tag = `[${e.path}${e.recirc ? ` r${e.recirc}` : ''}]`;
  const pkt = 'packet' in e ? ` | ${e.packet.src} -> ${e.packet.dst} ${e.packet.ct}` : '';
  switch (e.kind) {
    case 'table': {
      const pad = '  '.repeat(e.depth);
      return `${tag} ${pad}table ${tableLabel(e.table)}: ${e.flow ? flowText(e.flow) : 'miss → drop'}${pkt}`;
    }
    case 'ct':
      return `${tag}     ct(zone=${e.zone}${e.commit ? ',commit' : ''}${e.nat ? ',nat' : ''}) → ${e.state}${e.mark ? ` mark=0x${e.mark.toString(16)}` : ''}${e.note ? ` (${e.note})` : ''}${pkt}`;
    case 'recirc':
      return `${tag} recirculated from [${e.from}] to table ${tableLabel(e.table)}${pkt}`;
    case 'group':
      return `${tag}     group ${e.id} → bucket ${e.bucket ?? 'none (drop)'}${pkt}`;
    case 'output':
      return `${tag}     output ${e.port}${pkt}`;
    case 'skip':
      return `${tag}     output ${e.port} skipped (${e.reason})`;
    case 'error':
      return `${tag} error: ${e.message}`;
  }
}

export function hopLines(model: ClusterModel, hops: readonly Hop[], indent = '  '): string[] {
  const out: string[] = [];
  for (const h of hops) {
    switch (h.kind) {
      case 'bridge':
        out.push(
          `${indent}${h.node} bridge, in_port ${portText(model, h.node, h.inPort)} ${pair(h.packet)}`,
        );
        for (const e of h.result.trace) out.push(`${indent}  ${eventLines(e)}`);
        for (const o of h.result.outputs)
          out.push(
            `${indent}  → out ${portText(model, h.node, o.port)} ${pair(o.packet)} ${o.packet.ethSrc} → ${o.packet.ethDst}`,
          );
        if (h.result.outputs.length === 0) out.push(`${indent}  → dropped: ${bridgeDrop(h)}`);
        break;
      case 'host': {
        const v = h.verdict;
        const at = `${indent}${h.node} host${h.dev ? ` (in ${h.dev})` : ' (sends)'} ${pair(h.packet)}`;
        if (v.kind === 'local') out.push(`${at}: local delivery as ${pair(v.packet)}`);
        else if (v.kind === 'forward')
          out.push(
            `${at}: route out ${v.dev} next hop ${v.nextHop} as ${pair(v.packet)}${v.resolved ? ` (neighbour ${v.packet.ethDst})` : ''}`,
          );
        else if (v.kind === 'arp-reply') out.push(`${at}: answers ARP out ${v.dev}`);
        else out.push(`${at}: dropped (${v.reason})`);
        break;
      }
      case 'wire':
        out.push(
          `${indent}wire from ${h.from} to ${h.to.join(', ') || 'nobody'} ${pair(h.packet)} ${h.packet.ethSrc} → ${h.packet.ethDst}`,
        );
        break;
      case 'arp': {
        const who = `${placeText(model, h.place)}${h.dev ? ` on ${h.dev}` : ''}`;
        const answerer = arpAnswerer(model, h.hops);
        out.push(
          `${indent}ARP ${who}: who-has ${h.ip} → ${h.mac ?? 'no answer'}${answerer ? ` (answered by ${answerer})` : ''}`,
        );
        break;
      }
      case 'drop':
        out.push(`${indent}${placeText(model, h.place)}: dropped (${h.reason})`);
        break;
    }
  }
  return out;
}

/** Who produced the ARP reply: a bridge flow (the responder), a host, or a station. */
function arpAnswerer(model: ClusterModel, hops: readonly Hop[]): string | undefined {
  for (const h of hops) {
    if (h.kind === 'bridge') {
      const out = h.result.outputs.find((o) => o.packet.arpOp === 2);
      if (out && h.packet.arpOp === 1) {
        const t = [...h.result.trace].reverse().find((e) => e.kind === 'table' && e.flow);
        return t && t.kind === 'table' ? `${h.node} table ${tableLabel(t.table)}` : h.node;
      }
    }
    if (h.kind === 'host' && h.verdict.kind === 'arp-reply') return `${h.node} host`;
    if (h.kind === 'wire' && h.packet.arpOp === 2) return h.from;
  }
  void model;
  return undefined;
}

/** Flows and bigints turned into text, so a journey can be printed as JSON. */
export function journeyJson(model: ClusterModel, j: Journey): unknown {
  const hop = (h: Hop): unknown => {
    switch (h.kind) {
      case 'bridge':
        return {
          kind: 'bridge',
          node: h.node,
          inPort: h.inPort,
          packet: h.packet,
          verdict: h.result.verdict,
          error: h.result.error,
          steps: h.result.trace.map((e) =>
            e.kind === 'table'
              ? {
                  ...e,
                  tableName: TABLE_NAME.get(e.table),
                  flow: e.flow ? flowText(e.flow) : null,
                  ambiguous: e.ambiguous ? flowText(e.ambiguous) : undefined,
                }
              : e,
          ),
          outputs: h.result.outputs.map((o) => ({ port: o.port, packet: o.packet })),
        };
      case 'arp':
        return { ...h, answeredBy: arpAnswerer(model, h.hops), hops: h.hops.map(hop) };
      default:
        return h;
    }
  };
  return {
    verdict: j.verdict,
    error: j.error,
    arrivals: j.arrivals.map((a) => ({ at: serverName(model, a.place), packet: a.packet })),
    end: j.arrivals.length ? undefined : describeEnd(model, j),
    hops: j.hops.map(hop),
  };
}

/** One packet's outcome in a sentence. */
export function stepVerdict(model: ClusterModel, j: Journey): string {
  const at = j.arrivals.map((a) => `${serverName(model, a.place)} as ${pair(a.packet)}`);
  switch (j.verdict) {
    case 'delivered':
      return `delivered to ${at[0]}`;
    case 'duplicate':
      return `DUPLICATE: ${at.length} arrivals${at.length ? `: ${at.join('; ')}` : ''} (a bridge output twice)`;
    case 'error':
      return `ERROR: ${j.error}`;
    default:
      return `dropped: ${describeEnd(model, j)}`;
  }
}

export function connectionText(model: ClusterModel, conn: ConnectionResult): string {
  const lines: string[] = [];
  const n = conn.steps.length;
  for (const s of conn.steps) {
    const what = s.flags ? `${s.direction} [${s.flags}]` : s.direction;
    lines.push(
      `packet ${s.index + 1}${n > 1 ? `/${n}` : ''}: ${what} from ${placeText(model, s.from)} ${pair(s.sent)}`,
    );
    lines.push(...hopLines(model, s.journey.hops));
    lines.push(`  => ${stepVerdict(model, s.journey)}`, '');
  }
  if (conn.stopped) lines.push(`connection stopped: ${conn.stopped}`);
  else if (n > 1) lines.push(`connection completed: ${n} packets`);
  return lines.join('\n') + '\n';
}

export function connectionJson(model: ClusterModel, conn: ConnectionResult): unknown {
  return {
    client: serverName(model, conn.client),
    server: conn.server && serverName(model, conn.server),
    serverSaw: conn.serverSaw,
    stopped: conn.stopped,
    packets: conn.steps.map((s) => ({
      index: s.index + 1,
      direction: s.direction,
      flags: s.flags || undefined,
      from: serverName(model, s.from),
      sent: s.sent,
      verdict: stepVerdict(model, s.journey),
      journey: journeyJson(model, s.journey),
    })),
  };
}
