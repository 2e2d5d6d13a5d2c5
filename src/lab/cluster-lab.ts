// A lab built from a cluster file: one namespace per node with its own OVS running the compiled
// pipeline and the host plan, one namespace per pod, echo servers on the Services' target ports,
// and the runner that sends real TCP/UDP through every path of src/lab/paths.ts.

import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { loadInputs } from '../cli/context.js';
import { resolveNode } from '../config/resolve.js';
import type { NodeDataplane } from '../config/types.js';
import { applyHostPlan } from '../host/linux.js';
import { buildHostPlan } from '../host/plan.js';
import type { ClusterState } from '../model/types.js';
import { renderProgram } from '../openflow/render.js';
import { applyProgram } from '../ovs/ofctl.js';
import { compileNode } from '../pipeline/compile.js';
import { inCidr, intToIp, requireCidr, requireIPv4 } from '../net/ipv4.js';
import { enumeratePaths, echoPorts, hostServerName, podServerName, type LabPath } from './paths.js';
import type { ProbeResult, ProbeSpec } from './probe.js';
import { runProbes, spawnEchoServer } from './processes.js';
import { labDir, readState } from './state.js';
import {
  externalNs,
  labDown,
  labNodeFromDataplane,
  labUp,
  nodeNs,
  podNs,
  UPLINK_DEVICE,
  type LabDownReport,
  type LabNode,
  type LabSpec,
} from './topology.js';

export const DEFAULT_PREFIX = 'svl';

export interface ClusterLabOptions {
  clusterPath?: string;
  configPath?: string;
  prefix?: string;
  /** address of the external client; default .100 of the underlay (or the next free one) */
  externalIP?: string;
  /** default: the /24 around the first node's main IP */
  underlayCIDR?: string;
  /** false: leave each node's OVS and host unprogrammed, for a node agent to program */
  program?: boolean;
}

export interface ClusterLab {
  prefix: string;
  clusterPath: string;
  configPath?: string;
  state: ClusterState;
  dps: NodeDataplane[];
  spec: LabSpec;
}

const META = 'cluster-lab.json';

/** Load the cluster, resolve every node, and derive the lab spec. No side effects. */
export function planClusterLab(opts: ClusterLabOptions = {}): ClusterLab {
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const clusterPath = opts.clusterPath && resolve(opts.clusterPath);
  // a cluster file with an svcflow.yaml next to it (as the examples have) uses that config
  let configPath = opts.configPath && resolve(opts.configPath);
  if (clusterPath && !configPath) {
    const sibling = join(dirname(clusterPath), 'svcflow.yaml');
    if (existsSync(sibling)) configPath = sibling;
  }
  const loaded = loadInputs(clusterPath, configPath);
  // the lab's uplink device has a fixed name; the host plan turns offloads off on it
  const config = { ...loaded.config, uplinkInterface: UPLINK_DEVICE };
  const names = loaded.state.nodes.map((n) => n.name).sort();
  if (names.length === 0) throw new Error('the cluster has no nodes');
  const dps = names.map((n) => resolveNode(loaded.state, config, n));

  const underlayCIDR =
    opts.underlayCIDR ?? `${intToIp(requireCidr(`${dps[0].mainIP}/24`).network)}/24`;
  const used = new Set(dps.flatMap((d) => d.nodeIPs));
  for (const ip of used)
    if (!inCidr(underlayCIDR, ip))
      throw new Error(`node address ${ip} is outside the lab underlay ${underlayCIDR}`);
  let externalIP = opts.externalIP;
  if (!externalIP) {
    const { network: base, prefix } = requireCidr(underlayCIDR);
    const size = 2 ** (32 - prefix);
    for (let k = 100; k < size - 1 && !externalIP; k++) {
      if (!used.has(intToIp(base + k))) externalIP = intToIp(base + k);
    }
    if (!externalIP) throw new Error(`no free address for the external client in ${underlayCIDR}`);
  } else {
    requireIPv4(externalIP);
  }

  const nodes: LabNode[] = dps.map((dp) => {
    const node = labNodeFromDataplane(dp);
    // hostNetwork pods are served by the node namespace itself; listed for the record
    for (const p of loaded.state.pods) {
      if (p.nodeName !== dp.nodeName || !p.hostNetwork) continue;
      node.localPods.push({
        namespace: p.namespace,
        name: p.name,
        ip: p.ip ?? dp.mainIP,
        mac: dp.gatewayMAC,
        ofport: 0,
        hostNetwork: true,
      });
    }
    return node;
  });
  const spec: LabSpec = {
    prefix,
    underlayCIDR,
    external: { ip: externalIP },
    bridge: dps[0].bridge,
    gatewayInterface: dps[0].gatewayInterface,
    nodes,
  };
  return { prefix, clusterPath: loaded.clusterPath, configPath, state: loaded.state, dps, spec };
}

/** The namespace a path's source runs in. */
export function sourceNs(cl: ClusterLab, path: LabPath): string {
  const s = path.source;
  if (s.kind === 'external') return externalNs(cl.prefix);
  if (s.kind === 'host') return nodeNs(cl.prefix, s.node);
  const dp = cl.dps.find((d) => d.nodeName === s.node);
  const i = dp?.localPods.findIndex((p) => p.namespace === s.namespace && p.name === s.name) ?? -1;
  if (!dp || i < 0) throw new Error(`no pod ${s.namespace}/${s.name} on ${s.node}`);
  return podNs(cl.prefix, s.node, i);
}

export type Log = (line: string) => void;

async function limit<T>(items: T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** Tear down leftovers, build the lab, load host plans and pipelines, start the echo servers. */
export async function clusterLabUp(opts: ClusterLabOptions = {}, log: Log = () => {}) {
  const cl = planClusterLab(opts);
  const t0 = Date.now();
  const lab = await labUp(cl.spec);
  try {
    log(`lab ${cl.prefix}: ${lab.nodes.length} nodes up (${Date.now() - t0} ms)`);
    for (const [i, node] of lab.nodes.entries()) {
      if (opts.program === false) break;
      const dp = cl.dps[i];
      const hostCmds = await applyHostPlan(buildHostPlan(cl.state, dp), { ns: node.ns });
      const text = renderProgram(compileNode(cl.state, dp));
      const stats = await applyProgram(node.ovs.openflowTarget(), text.groups, text.flows);
      log(
        `${dp.nodeName}: host plan ${hostCmds.length} commands, ${stats.groups} groups, ${stats.flows} flows`,
      );
    }
    const ports = echoPorts(cl.state, cl.dps);
    const servers: { ns: string; name: string; tcp: number[]; udp: number[] }[] = [];
    for (const [i, dp] of cl.dps.entries()) {
      if (ports.hosts.tcp.length || ports.hosts.udp.length)
        servers.push({ ns: lab.nodes[i].ns, name: hostServerName(dp.nodeName), ...ports.hosts });
      for (const [k, p] of dp.localPods.entries())
        servers.push({
          ns: podNs(cl.prefix, dp.nodeName, k),
          name: podServerName(p),
          ...ports.pods,
        });
    }
    // each server is a Node process: start a few at a time on a small machine
    await limit(servers, 4, async (s) => {
      await spawnEchoServer(cl.prefix, s.ns, { name: s.name, tcpPorts: s.tcp, udpPorts: s.udp });
    });
    log(
      `${servers.length} echo servers (pods: tcp ${ports.pods.tcp} udp ${ports.pods.udp}; hosts: tcp ${ports.hosts.tcp} udp ${ports.hosts.udp}) in ${Date.now() - t0} ms`,
    );
    const meta = {
      clusterPath: cl.clusterPath,
      configPath: cl.configPath,
      externalIP: cl.spec.external.ip,
      underlayCIDR: cl.spec.underlayCIDR,
    };
    await writeFile(join(labDir(cl.prefix), META), JSON.stringify(meta, null, 2) + '\n');
    return { ...cl, lab };
  } catch (e) {
    await labDown(cl.prefix);
    throw e;
  }
}

export function clusterLabDown(prefix = DEFAULT_PREFIX): Promise<LabDownReport> {
  return labDown(prefix);
}

/** The lab that `up` built under this prefix (same cluster file and addresses). */
export async function openClusterLab(
  prefix = DEFAULT_PREFIX,
  override: ClusterLabOptions = {},
): Promise<ClusterLab> {
  const state = await readState(prefix);
  if (!state) throw new Error(`no lab ${prefix} is up (run: svcflow lab up)`);
  let meta: ClusterLabOptions = {};
  try {
    meta = JSON.parse(await readFile(join(labDir(prefix), META), 'utf8')) as ClusterLabOptions;
  } catch {
    throw new Error(`lab ${prefix} was not built by svcflow lab up (no ${META})`);
  }
  return planClusterLab({ ...meta, ...override, prefix });
}

// ---------- running the paths ----------

export interface PathResult {
  path: LabPath;
  ok: boolean;
  /** server → answers seen */
  seen: Record<string, number>;
  problems: string[];
  /** WHO probes that got no answer under load and then passed when sent again alone */
  retried: number;
  probes: number;
  ms: number;
}

export interface RunOptions {
  /** only paths whose name or group contains this text */
  only?: string;
  /** WHO probes per round for a path with several servers */
  perRound?: number;
  maxRounds?: number;
  bulkBytes?: number;
  log?: Log;
}

const WHO_TIMEOUT = 4000;
const FAIL_TIMEOUT = 1500;
const BULK_TIMEOUT = 20_000;

interface Pending {
  path: LabPath;
  ns: string;
  result: PathResult;
}

function whoSpec(p: LabPath, timeoutMs = WHO_TIMEOUT): ProbeSpec {
  const { ip: host, port } = p.dest;
  return p.protocol === 'UDP'
    ? { kind: 'udp-who', host, port, timeoutMs, windowMs: 300 }
    : { kind: 'tcp-who', host, port, timeoutMs };
}

/** Check one probe against the path's expectations; returns the problems found. */
function judge(p: LabPath, r: ProbeResult, seen: Record<string, number>): string[] {
  const problems: string[] = [];
  const dialled = `${p.dest.ip}:${p.dest.port}`;
  if (!r.ok) return [`${r.spec.kind}: ${r.error ?? 'failed'}`];
  if (r.spec.kind === 'tcp-bulk') return [];
  for (const f of r.from ?? [])
    if (f !== dialled) problems.push(`reply came from ${f}, not the dialled ${dialled}`);
  const who = r.who;
  if (!who) return [...problems, 'no answer'];
  const server = p.servers.find((s) => s.name === who.server);
  if (!server) return [...problems, `answered by ${who.server}, not one of the allowed servers`];
  seen[who.server] = (seen[who.server] ?? 0) + 1;
  const peerIP = who.peer.replace(/:\d+$/, '');
  if (peerIP !== server.peer)
    problems.push(`${who.server} saw the client as ${peerIP}, expected ${server.peer}`);
  return problems;
}

/** Run every path; sources in different namespaces run in parallel, each bounded. */
export async function runClusterLabPaths(
  cl: ClusterLab,
  opts: RunOptions = {},
): Promise<PathResult[]> {
  const perRound = opts.perRound ?? 6;
  const maxRounds = opts.maxRounds ?? 4;
  const bulkBytes = opts.bulkBytes ?? 1 << 20;
  const log = opts.log ?? (() => {});
  const all = enumeratePaths(cl.state, cl.dps, cl.spec.external.ip).filter(
    (p) => !opts.only || p.name.includes(opts.only) || p.group.includes(opts.only),
  );
  const pending: Pending[] = all.map((path) => ({
    path,
    ns: sourceNs(cl, path),
    result: { path, ok: true, seen: {}, problems: [], retried: 0, probes: 0, ms: 0 },
  }));

  const lost: Pending[] = [];
  for (let round = 0; round < maxRounds; round++) {
    const work = new Map<string, { item: Pending; spec: ProbeSpec }[]>();
    const push = (item: Pending, spec: ProbeSpec) => {
      const list = work.get(item.ns) ?? [];
      list.push({ item, spec });
      work.set(item.ns, list);
    };
    for (const item of pending) {
      const { path, result } = item;
      if (path.mustFail) {
        if (round === 0) push(item, whoSpec(path, FAIL_TIMEOUT));
        continue;
      }
      const missing = path.servers.filter((s) => !result.seen[s.name]);
      if (round > 0 && missing.length === 0) continue;
      const n = path.servers.length > 1 ? perRound : 1;
      for (let k = 0; k < n; k++) push(item, whoSpec(path));
    }
    if (work.size === 0) break;
    const t0 = Date.now();
    await Promise.all(
      [...work.entries()].map(async ([ns, list]) => {
        const results = await runProbes(
          ns,
          list.map((w) => w.spec),
          6,
        );
        list.forEach(({ item }, k) => {
          const r = results[k];
          item.result.probes++;
          item.result.ms = Math.max(item.result.ms, r.ms);
          if (item.path.mustFail) {
            if (r.ok)
              item.result.problems.push(`answered by ${r.who?.server ?? '?'} but must fail`);
            return;
          }
          if (!r.ok && r.spec.kind !== 'tcp-bulk' && /timed out|no UDP reply/.test(r.error ?? ''))
            lost.push(item);
          else item.result.problems.push(...judge(item.path, r, item.result.seen));
        });
      }),
    );
    const specs = [...work.values()].reduce((t, l) => t + l.length, 0);
    log(
      `round ${round + 1}: ${specs} probes from ${work.size} namespaces in ${Date.now() - t0} ms`,
    );
  }

  // An unanswered probe is sent once more, alone: a datagram or SYN lost while the datapath was
  // busy is not a broken path, but a path that drops its packets fails again here.
  for (const item of lost) {
    const [r] = await runProbes(item.ns, [whoSpec(item.path)]);
    item.result.probes++;
    const problems = judge(item.path, r, item.result.seen);
    if (problems.length) item.result.problems.push(...problems);
    else item.result.retried++;
  }
  if (lost.length) log(`${lost.length} unanswered probes sent again`);

  // Bulk transfers last and two at a time per namespace: they fill the userspace datapath's
  // queues, and a single WHO datagram lost to that congestion would say nothing about the path.
  const bulk = new Map<string, Pending[]>();
  for (const item of pending) {
    if (item.path.mustFail || item.path.protocol !== 'TCP') continue;
    bulk.set(item.ns, [...(bulk.get(item.ns) ?? []), item]);
  }
  const t1 = Date.now();
  await Promise.all(
    [...bulk.entries()].map(async ([ns, items]) => {
      const specs: ProbeSpec[] = items.map(({ path }) => ({
        kind: 'tcp-bulk',
        host: path.dest.ip,
        port: path.dest.port,
        bytes: bulkBytes,
        timeoutMs: BULK_TIMEOUT,
      }));
      const results = await runProbes(ns, specs, 2);
      items.forEach((item, k) => {
        item.result.probes++;
        item.result.problems.push(...judge(item.path, results[k], item.result.seen));
      });
    }),
  );
  log(`bulk: ${[...bulk.values()].flat().length} × ${bulkBytes} bytes in ${Date.now() - t1} ms`);

  for (const { path, result } of pending) {
    if (!path.mustFail) {
      const missing = path.servers.filter((s) => !result.seen[s.name]).map((s) => s.name);
      if (missing.length) result.problems.push(`never answered by ${missing.join(', ')}`);
    }
    result.problems = [...new Set(result.problems)];
    result.ok = result.problems.length === 0;
  }
  return pending.map((p) => p.result);
}

/** The results as a table, one path a line, then the count. */
export function formatResults(results: PathResult[]): string {
  const rows = results.map((r) => {
    const p = r.path;
    const dest = `${p.dest.ip}:${p.dest.port}/${p.protocol}`;
    const who = p.mustFail
      ? `must fail: ${p.mustFail}`
      : p.servers.map((s) => `${s.name}×${r.seen[s.name] ?? 0} sees ${s.peer}`).join(', ');
    return [r.ok ? 'PASS' : 'FAIL', p.group, p.name, dest, who];
  });
  const widths = [4, 0, 0, 0].map((w, i) => Math.max(w, ...rows.map((r) => r[i].length)));
  const lines = rows.map((r, k) => {
    const main = r
      .slice(0, 4)
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ');
    const retried = results[k].retried ? ` (${results[k].retried} lost probe(s) resent)` : '';
    const problems = results[k].problems.map((x) => `\n      ! ${x}`).join('');
    return `${main}  ${r[4]}${retried}${problems}`;
  });
  const passed = results.filter((r) => r.ok).length;
  const resent = results.reduce((t, r) => t + r.retried, 0);
  lines.push(
    `${passed}/${results.length} paths pass${resent ? `, ${resent} lost probe(s) resent` : ''}`,
  );
  return lines.join('\n') + '\n';
}
