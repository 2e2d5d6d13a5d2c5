// Agent benchmark against a real private ovs-vswitchd (one namespace, userspace datapath):
//  (a) one endpoint change → agent sync → bundle applied → visible in OVS, at 10k Services and
//      at 100 Services in the same run (median, p99);
//  (b) bulk install of the 10k-Service program through the agent's apply path against raw
//      `ovs-ofctl --bundle add-groups` + `add-flows` of the same program.
// Needs root and Open vSwitch; everything it starts is tracked by pid and stopped at the end.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';

import { Agent } from '../src/agent/agent.js';
import { DesiredProgram } from '../src/agent/desired.js';
import {
  KINDS,
  type ClusterSource,
  type RawObject,
  type SourceEvent,
} from '../src/agent/source.js';
import { validateObjects } from '../src/cluster/validate.js';
import { parseConfig } from '../src/config/config.js';
import { resolveNode } from '../src/config/resolve.js';
import { run } from '../src/lab/exec.js';
import { missingOvsBinaries, OvsInstance } from '../src/lab/ovs-instance.js';
import { recordNamespace } from '../src/lab/state.js';
import { labDown } from '../src/lab/topology.js';
import type { ClusterState } from '../src/model/types.js';
import { parseGroup } from '../src/openflow/parse.js';
import { renderGroup, renderProgram } from '../src/openflow/render.js';
import { ofctlRunner, OvsSync } from '../src/ovs/sync.js';
import { compileNode } from '../src/pipeline/compile.js';
import { syntheticCluster } from './synthetic.js';

const PREFIX = 'svagb';
const NS = `${PREFIX}-bench`;
const NODE = 'node-0';

/** The synthetic cluster as the raw objects a watch would deliver. */
export function rawObjects(state: ClusterState): RawObject[] {
  const out: RawObject[] = [];
  for (const n of state.nodes)
    out.push({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n.name },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: { addresses: n.addresses.map((address) => ({ type: 'InternalIP', address })) },
    });
  for (const p of state.pods)
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
      spec: { nodeName: p.nodeName, hostNetwork: p.hostNetwork },
      status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
    });
  for (const s of state.services)
    out.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: s.namespace },
      spec: {
        type: s.type,
        clusterIP: s.clusterIPs[0],
        clusterIPs: s.clusterIPs,
        ports: s.ports.map((p) => ({ ...p })),
        externalTrafficPolicy: s.type === 'ClusterIP' ? undefined : s.externalTrafficPolicy,
        internalTrafficPolicy: s.internalTrafficPolicy,
      },
    });
  for (const sl of state.endpointSlices) out.push(sliceObject(sl));
  return out;
}

function sliceObject(sl: ClusterState['endpointSlices'][number]): RawObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: {
      name: sl.name,
      namespace: sl.namespace,
      labels: { 'kubernetes.io/service-name': sl.serviceName },
    },
    ports: sl.ports,
    endpoints: sl.endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
      nodeName: e.nodeName,
    })),
  };
}

/** A source the bench drives by hand, as a watch would. */
class BenchSource implements ClusterSource {
  readonly name = 'bench';
  private cb?: (ev: SourceEvent) => void;
  constructor(private readonly objects: RawObject[]) {}
  async start(onChange: (ev: SourceEvent) => void) {
    this.cb = onChange;
    onChange({ type: 'snapshot', kinds: KINDS, objects: this.objects });
  }
  async stop() {
    this.cb = undefined;
  }
  emit(ev: SourceEvent) {
    this.cb?.(ev);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, median: r(q(0.5)), p99: r(q(0.99)), min: r(s[0]), max: r(s[s.length - 1]) };
}

async function freshBridge(ovs: OvsInstance) {
  await ovs.vsctl(['--if-exists', 'del-br', ovs.bridge]);
  await ovs.addBridge();
}

/**
 * `changes` single-endpoint changes at `services` Services: each replaces one endpoint of one
 * Service (on a remote node) and times event → sync done (bundle committed) → visible (the
 * Service's group, read back from OVS, holds the new address).
 */
async function changeLatency(ovs: OvsInstance, services: number, changes: number) {
  await freshBridge(ovs);
  const state = syntheticCluster(services, 10);
  const objects = rawObjects(state);
  const source = new BenchSource(objects);
  const agent = new Agent({
    nodeName: NODE,
    config: parseConfig([]),
    source,
    ofctl: ofctlRunner(ovs.openflowTarget()),
    log: pino({ level: 'warn' }),
    minSyncIntervalMs: 0,
    maxSyncIntervalMs: 3_600_000,
    switchSocket: ovs.mgmtSocket,
  });
  const t0 = process.hrtime.bigint();
  await agent.start();
  const waitSynced = async (prev: unknown, limitMs: number) => {
    const end = Date.now() + limitMs;
    while (agent.last === prev || agent.runner.busy) {
      if (Date.now() > end) throw new Error(`no sync within ${limitMs} ms`);
      await sleep(1);
    }
  };
  await waitSynced(undefined, 600_000);
  const initialMs = ms(t0);
  const applied: number[] = [];
  const visible: number[] = [];
  for (let i = 0; i < changes; i++) {
    const sl = state.endpointSlices[(i * 7919) % state.endpointSlices.length];
    const e = sl.endpoints.findIndex((x) => x.nodeName !== NODE);
    // a fresh address inside the endpoint node's pod CIDR (10.<n+1>.0.0/16)
    const n = Number(sl.endpoints[e].nodeName!.slice('node-'.length));
    const ip = `10.${n + 1}.${200 + ((i >> 8) & 31)}.${(i & 255) + 1}`;
    sl.endpoints[e] = { ...sl.endpoints[e], ip };
    const prev = agent.last;
    const t = process.hrtime.bigint();
    source.emit({ type: 'update', object: sliceObject(sl) });
    await waitSynced(prev, 30_000);
    applied.push(ms(t));
    const group = agent.last?.ovs?.plan.groupMods[0];
    if (group === undefined) throw new Error(`change ${i}: no group modified`);
    const out = (await ovs.ofctl('dump-groups', [String(group.id)])).stdout;
    visible.push(ms(t));
    const line = out.split('\n').find((l) => l.trim().startsWith('group_id='));
    if (!line || renderGroup(parseGroup(line.trim())) !== renderGroup(group))
      throw new Error(`change ${i}: group ${group.id} is not the new one: ${line}`);
  }
  await agent.stop();
  return {
    services,
    flows: agent.last?.ovs?.flows,
    groups: agent.last?.ovs?.groups,
    initialSyncMs: Math.round(initialMs),
    appliedMs: stats(applied),
    visibleMs: stats(visible),
  };
}

/** The 10k program through OvsSync (the agent's apply path) vs raw ovs-ofctl bundles. */
async function bulkInstall(ovs: OvsInstance, services: number) {
  const state = syntheticCluster(services, 10);
  const { state: valid } = validateObjects(rawObjects(state));
  const dp = resolveNode(valid, parseConfig([]), NODE);
  const program = compileNode(valid, dp, { round: 1 });
  const text = renderProgram(program);
  // the agent hands its apply path a keyed view, built as Services compile (not timed here)
  const desired = new DesiredProgram(1);
  desired.update(valid, dp, { services: new Set(), nodes: new Set(), pods: false });
  const view = desired.view();
  const dir = await mkdtemp(join(tmpdir(), 'svcflow-bench-'));
  try {
    const groupsFile = join(dir, 'groups.txt');
    const flowsFile = join(dir, 'flows.txt');
    await writeFile(groupsFile, text.groups);
    await writeFile(flowsFile, text.flows);

    await freshBridge(ovs);
    let t = process.hrtime.bigint();
    const sw = ovs.ofctlTarget;
    const opts = { env: ovs.env, timeoutMs: 600_000 };
    await run([...ovs.ofctlArgv(), '--bundle', 'add-groups', sw, groupsFile], opts);
    await run([...ovs.ofctlArgv(), '--bundle', 'add-flows', sw, flowsFile], opts);
    const rawMs = ms(t);
    const rawCount = await ofctlRunner(ovs.openflowTarget()).flowCount();

    await freshBridge(ovs);
    const sync = new OvsSync(ofctlRunner({ ...ovs.openflowTarget(), timeoutMs: 600_000 }));
    t = process.hrtime.bigint();
    await sync.pickRound();
    const r = await sync.sync(view);
    const agentMs = ms(t);
    const agentCount = await ofctlRunner(ovs.openflowTarget()).flowCount();
    if (rawCount !== program.flows.length || agentCount !== program.flows.length)
      throw new Error(
        `flow counts: raw ${rawCount}, agent ${agentCount}, want ${program.flows.length}`,
      );
    return {
      services,
      flows: program.flows.length,
      groups: program.groups.length,
      bundleLines: r.plan.flowAdds.length + r.plan.groupAdds.length,
      rawOfctlMs: Math.round(rawMs),
      agentApplyMs: Math.round(agentMs),
      ratioRawToAgent: Math.round((rawMs / agentMs) * 100) / 100,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runAgentBench(): Promise<Record<string, unknown>> {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (namespace, ovs-vswitchd)' };
  const missing = await missingOvsBinaries();
  if (missing.length) return { skipped: `needs ${missing.join(', ')}` };
  const changes = Number(process.env.AGENT_BENCH_CHANGES ?? 30);
  const big = Number(process.env.AGENT_BENCH_SERVICES ?? 10_000);
  await labDown(PREFIX);
  try {
    await recordNamespace(PREFIX, NS);
    await run(['ip', 'netns', 'add', NS]);
    const ovs = new OvsInstance({ prefix: PREFIX, node: 'bench', ns: NS });
    await ovs.start();
    process.stderr.write(`  change latency at 100 Services…\n`);
    await changeLatency(ovs, 100, 5); // warm-up: JIT and caches
    const small = await changeLatency(ovs, 100, changes);
    process.stderr.write(`  change latency at ${big} Services…\n`);
    const large = await changeLatency(ovs, big, changes);
    process.stderr.write(`  bulk install of ${big} Services…\n`);
    const bulk = await bulkInstall(ovs, big);
    const ratio = large.visibleMs.median / small.visibleMs.median;
    const targets = { medianMsMax: 50, ratioLargeToSmallMax: 1.5, bulkRatioMin: 0.8 };
    return {
      small,
      large,
      ratioLargeToSmall: Math.round(ratio * 100) / 100,
      bulk,
      targets,
      pass:
        large.visibleMs.median <= targets.medianMsMax &&
        ratio <= targets.ratioLargeToSmallMax &&
        bulk.ratioRawToAgent >= targets.bulkRatioMin,
    };
  } finally {
    const report = await labDown(PREFIX);
    if (report.survivors.length) process.stderr.write(`  survivors: ${report.survivors}\n`);
  }
}
