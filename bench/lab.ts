// Connection-rate benchmark on the real lab: new TCP connections per second through a NodePort
// (external client → node-a:NodePort of `web`, endpoint on node-b: DNAT, SNAT, LB, across
// nodes) against pod → pod across the same two nodes, measured alternately in one run so
// machine noise hits both. Each connection is connect, `WHO`, answer, close (src/lab/connrate.ts).
// Per path it also records what each node's ovs-vswitchd spent: CPU per connection by thread
// kind, and the datapath's packets, recirculations and upcalls per connection.

import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { parseAllDocuments } from 'yaml';

import { EXAMPLE_CLUSTER, EXAMPLE_CONFIG, REPO_ROOT } from '../src/cli/context.js';
import { clusterLabDown, clusterLabUp } from '../src/lab/cluster-lab.js';
import type { ConnRateResult, ConnRateSpec } from '../src/lab/connrate.js';
import { runInNs } from '../src/lab/exec.js';
import { missingOvsBinaries, type OvsInstance } from '../src/lab/ovs-instance.js';
import { clientPod, podServerName } from '../src/lab/paths.js';
import { readState } from '../src/lab/state.js';
import { externalNs, podNs } from '../src/lab/topology.js';

export const LAB_BENCH_PREFIX = 'svlb';

export interface LabBenchOptions {
  prefix?: string;
  /** alternating rounds; each round measures both paths */
  rounds?: number;
  count?: number;
  durationMs?: number;
  concurrency?: number;
}

const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const CONNRATE = join(REPO_ROOT, 'src', 'lab', 'connrate.ts');
const log = (line: string) => process.stderr.write(`  ${line}\n`);

/**
 * The two-node example with `web`'s endpoints cut down to those on node-b, so every NodePort
 * connection entering node-a crosses to node-b (the example balances over both nodes).
 */
async function writeCrossNodeCluster(dir: string): Promise<string> {
  const docs = parseAllDocuments(await readFile(EXAMPLE_CLUSTER, 'utf8')).map((d) => d.toJS());
  for (const doc of docs) {
    for (const item of doc?.kind === 'List' ? doc.items : [doc]) {
      if (item?.kind !== 'EndpointSlice') continue;
      if (item.metadata?.labels?.['kubernetes.io/service-name'] !== 'web') continue;
      item.endpoints = item.endpoints.filter((e: { nodeName?: string }) => e.nodeName === 'node-b');
    }
  }
  const path = join(dir, 'cluster.yaml');
  await writeFile(path, docs.map((d) => JSON.stringify(d)).join('\n---\n') + '\n');
  return path;
}

async function runConnRate(ns: string, spec: ConnRateSpec): Promise<ConnRateResult> {
  const budget = spec.durationMs + (spec.warmup ?? 0) * (spec.timeoutMs ?? 3000) + 20_000;
  const r = await runInNs(
    ns,
    [process.execPath, '--import', tsxLoader, CONNRATE, JSON.stringify(spec)],
    { timeoutMs: budget },
  );
  return JSON.parse(r.stdout) as ConnRateResult;
}

// ---------- where ovs-vswitchd spends its time ----------

/** CPU ms per thread kind (main, handler, revalidator, …) of one process, from /proc. */
async function threadCpuMs(pid: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ = 100)
    const ms = (Number(fields[11]) + Number(fields[12])) * 10;
    const kind = comm === 'ovs-vswitchd' ? 'main' : comm.replace(/\d+$/, '');
    out[kind] = (out[kind] ?? 0) + ms;
  }
  return out;
}

const DP_KEYS: Record<string, string> = {
  'packets received': 'packets',
  'packet recirculations': 'recirculations',
  'megaflow hits': 'megaflowHits',
  'miss with success upcall': 'upcalls',
  'emc hits': 'emcHits',
  'smc hits': 'smcHits',
};

/** Sum of the userspace datapath's counters over its threads (`dpif-netdev/pmd-stats-show`). */
async function dpStats(ovs: OvsInstance): Promise<Record<string, number>> {
  const r = await ovs.appctl(['dpif-netdev/pmd-stats-show']);
  const out: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([a-z. ]+):\s*([\d.]+)/.exec(line);
    const key = m && DP_KEYS[m[1].trim()];
    if (key) out[key] = (out[key] ?? 0) + Number(m[2]);
  }
  return out;
}

/** TCP packets a node's conntrack found out of window (they become +inv and are dropped). */
async function seqCheckFailures(ovs: OvsInstance): Promise<number> {
  const r = await ovs.appctl(['coverage/read-counter', 'conntrack_tcp_seq_chk_failed']);
  return Number(r.stdout.trim()) || 0;
}

interface NodeProbe {
  name: string;
  ovs: OvsInstance;
  pid: number;
}

/** Run `f` once with both nodes' datapath counters cleared; per-connection costs per node. */
async function profile(nodes: NodeProbe[], f: () => Promise<ConnRateResult>) {
  await Promise.all(nodes.map((n) => n.ovs.appctl(['dpif-netdev/pmd-stats-clear'])));
  const before = await Promise.all(nodes.map((n) => threadCpuMs(n.pid)));
  const seq0 = await Promise.all(nodes.map((n) => seqCheckFailures(n.ovs)));
  const result = await f();
  const after = await Promise.all(nodes.map((n) => threadCpuMs(n.pid)));
  const seq1 = await Promise.all(nodes.map((n) => seqCheckFailures(n.ovs)));
  const stats = await Promise.all(nodes.map((n) => dpStats(n.ovs)));
  const per = (x: number) => Math.round((x / Math.max(1, result.completed)) * 100) / 100;
  const nodesOut: Record<string, unknown> = {};
  nodes.forEach((n, i) => {
    const cpu: Record<string, number> = {};
    for (const [k, v] of Object.entries(after[i])) {
      const d = v - (before[i][k] ?? 0);
      if (d > 0) cpu[k] = per(d);
    }
    const dp: Record<string, number> = {};
    for (const [k, v] of Object.entries(stats[i])) dp[k] = per(v);
    nodesOut[n.name] = {
      vswitchdCpuMsPerConn: cpu,
      datapathPerConn: dp,
      conntrackSeqCheckFailures: seq1[i] - seq0[i],
    };
  });
  return {
    perSecond: result.perSecond,
    completed: result.completed,
    errors: result.errors,
    errorSamples: result.errorSamples,
    nodes: nodesOut,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function runLabBench(opts: LabBenchOptions = {}): Promise<Record<string, unknown>> {
  const prefix = opts.prefix ?? LAB_BENCH_PREFIX;
  const rounds = opts.rounds ?? 5;
  const base = {
    count: opts.count ?? 500,
    durationMs: opts.durationMs ?? 10_000,
    concurrency: opts.concurrency ?? 4,
    warmup: 20,
    timeoutMs: 3000,
  };
  if (process.getuid?.() !== 0) return { skipped: 'the lab bench needs root' };
  const missing = await missingOvsBinaries();
  if (missing.length) return { skipped: `the lab bench needs ${missing.join(', ')}` };

  const dir = await mkdtemp(join(tmpdir(), 'svcflow-labbench-'));
  try {
    const clusterPath = await writeCrossNodeCluster(dir);
    const up = await clusterLabUp({ clusterPath, configPath: EXAMPLE_CONFIG, prefix }, log);
    const dpA = up.dps.find((d) => d.nodeName === 'node-a');
    const dpB = up.dps.find((d) => d.nodeName === 'node-b');
    const web = up.state.services.find((s) => s.namespace === 'default' && s.name === 'web');
    const nodePort = web?.ports[0]?.nodePort;
    const target = dpB?.localPods.find((p) => p.name === 'web-b1');
    const client = dpA && clientPod(up.state, dpA);
    if (!dpA || !dpB || nodePort === undefined || !target || !client)
      throw new Error('the two-node example lacks node-a, node-b, web, web-b1 or a client pod');
    const expectServer = podServerName(target);
    const paths = {
      nodePort: {
        describe: `external ${up.spec.external.ip} → ${dpA.mainIP}:${nodePort} (web, ETP Cluster) → ${target.ip}:8080 on node-b`,
        ns: externalNs(prefix),
        spec: { ...base, host: dpA.mainIP, port: nodePort, expectServer },
      },
      direct: {
        describe: `pod ${client.name} on node-a → ${target.name} ${target.ip}:8080 on node-b`,
        ns: podNs(prefix, 'node-a', dpA.localPods.indexOf(client)),
        spec: { ...base, host: target.ip, port: 8080, expectServer },
      },
    };

    const state = await readState(prefix);
    const vswitchd = (node: string) =>
      state?.processes.find((p) => p.role === `ovs-vswitchd ${node}`)?.pid ?? 0;
    const nodes: NodeProbe[] = [
      { name: 'node-a', ovs: up.lab.nodes[up.dps.indexOf(dpA)].ovs, pid: vswitchd('node-a') },
      { name: 'node-b', ovs: up.lab.nodes[up.dps.indexOf(dpB)].ovs, pid: vswitchd('node-b') },
    ];
    // connections that stall show up as conntrack sequence-check failures on the nodes
    const seqChk = { nodePort: 0, direct: 0 };
    const seqTotal = async () =>
      (await Promise.all(nodes.map((n) => seqCheckFailures(n.ovs)))).reduce((t, x) => t + x, 0);

    // ABBA order: a drift in machine load over the run weighs on both paths alike
    const runs: { nodePort: ConnRateResult[]; direct: ConnRateResult[] } = {
      nodePort: [],
      direct: [],
    };
    for (let r = 0; r < rounds; r++) {
      const order =
        r % 2 === 0 ? (['nodePort', 'direct'] as const) : (['direct', 'nodePort'] as const);
      for (const name of order) {
        const p = paths[name];
        const before = await seqTotal();
        const res = await runConnRate(p.ns, p.spec);
        seqChk[name] += (await seqTotal()) - before;
        runs[name].push(res);
        log(
          `round ${r + 1} ${name}: ${res.perSecond}/s (${res.completed} in ${res.elapsedMs} ms, ` +
            `${res.errors} errors, p50 ${res.latencyMs.p50} ms)`,
        );
      }
    }

    const profiled: Record<string, unknown> = {};
    for (const name of ['nodePort', 'direct'] as const) {
      const p = paths[name];
      profiled[name] = await profile(nodes, () =>
        runConnRate(p.ns, { ...p.spec, warmup: 0, count: 200 }),
      );
    }

    const rate = (name: 'nodePort' | 'direct') => median(runs[name].map((x) => x.perSecond));
    const ratio = rate('nodePort') / rate('direct');
    const errors = [...runs.nodePort, ...runs.direct].reduce((t, x) => t + x.errors, 0);
    const pairs = runs.nodePort.map(
      (x, i) => Math.round((x.perSecond / runs.direct[i].perSecond) * 1000) / 1000,
    );
    const summarise = (name: 'nodePort' | 'direct') => ({
      path: paths[name].describe,
      medianPerSecond: rate(name),
      perRound: runs[name].map((x) => x.perSecond),
      p50LatencyMs: runs[name].map((x) => x.latencyMs.p50),
      p99LatencyMs: runs[name].map((x) => x.latencyMs.p99),
      completed: runs[name].reduce((t, x) => t + x.completed, 0),
      errors: runs[name].reduce((t, x) => t + x.errors, 0),
      errorSamples: [...new Set(runs[name].flatMap((x) => x.errorSamples))],
      conntrackSeqCheckFailures: seqChk[name],
    });
    return {
      settings: { ...base, rounds },
      nodePort: summarise('nodePort'),
      direct: summarise('direct'),
      ratioNodePortToDirect: Math.round(ratio * 1000) / 1000,
      perRoundRatio: pairs,
      medianPerRoundRatio: median(pairs),
      profile: profiled,
      targets: { ratioMin: 0.8 },
      pass: ratio >= 0.8 && errors === 0,
    };
  } finally {
    const down = await clusterLabDown(prefix);
    if (down.survivors.length) log(`lab ${prefix}: pids ${down.survivors} survived teardown`);
    await rm(dir, { recursive: true, force: true });
  }
}
