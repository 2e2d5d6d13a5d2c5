// Simulator speed: packets per second through one bridge against `ofproto/trace` calls per second
// on the same packets in the same run (a private ovs-vswitchd; skipped without root/OVS), and
// one full connection trace in a 10k-Service cluster (model and index build reported apart).
import { DEFAULT_CONFIG } from '../src/config/config.js';
import { loadInputs } from '../src/cli/context.js';
import { run } from '../src/lab/exec.js';
import { missingOvsBinaries, OvsInstance } from '../src/lab/ovs-instance.js';
import { recordNamespace } from '../src/lab/state.js';
import { labDown } from '../src/lab/topology.js';
import { applyProgram } from '../src/ovs/ofctl.js';
import { renderProgram } from '../src/openflow/render.js';
import { buildClusterModel, ClusterSim } from '../src/sim/cluster.js';
import { runConnection } from '../src/sim/connection.js';
import type { Conntrack } from '../src/sim/conntrack.js';
import { simulate } from '../src/sim/interpreter.js';
import type { Packet } from '../src/sim/packet.js';
import { clusterPaths, forEachPathConnection } from '../src/sim/verify.js';
import { syntheticCluster } from './synthetic.js';

const PREFIX = 'svld';
const OVS_CALLS = 200;

interface Sample {
  inPort: number | 'LOCAL';
  packet: Packet;
  ct: Conntrack;
}

/** Bridge passes of node-a during every verify connection of the two-node example. */
function samples() {
  const loaded = loadInputs();
  const model = buildClusterModel(loaded.state, loaded.config);
  const sim = new ClusterSim(model);
  const out: Sample[] = [];
  forEachPathConnection(
    sim,
    clusterPaths(model),
    {
      beforeBridge: (node, inPort, packet) => {
        if (node.name === 'node-a') out.push({ inPort, packet, ct: node.conntrack.clone() });
      },
    },
    () => {},
  );
  return { model, samples: out };
}

function ctNext(r: ReturnType<typeof simulate>): string[] {
  return r.trace.flatMap((e) =>
    e.kind === 'ct' && e.table !== undefined ? [e.state.split('+').filter(Boolean).join(',')] : [],
  );
}

function flowSpec(inPort: number | 'LOCAL', p: Packet): string {
  const head = `in_port=${inPort},dl_src=${p.ethSrc},dl_dst=${p.ethDst}`;
  if (p.ethType === 'arp')
    return `arp,${head},arp_op=${p.arpOp},arp_spa=${p.arpSpa},arp_tpa=${p.arpTpa},arp_sha=${p.arpSha},arp_tha=${p.arpTha}`;
  const ip = `nw_src=${p.ipSrc},nw_dst=${p.ipDst}`;
  if (p.ipProto === 'udp') return `udp,${head},${ip},udp_src=${p.tpSrc},udp_dst=${p.tpDst}`;
  const f = p.tcpFlags ?? {};
  const bits = (f.fin ? 1 : 0) | (f.syn ? 2 : 0) | (f.rst ? 4 : 0) | (f.ack ? 0x10 : 0);
  return `tcp,${head},${ip},tp_src=${p.tpSrc},tp_dst=${p.tpDst},tcp_flags=0x${bits.toString(16).padStart(3, '0')}`;
}

async function ovsRate(
  model: ReturnType<typeof samples>['model'],
  list: Sample[],
): Promise<Record<string, unknown>> {
  if (process.getuid?.() !== 0) return { skipped: 'needs root' };
  const missing = await missingOvsBinaries();
  if (missing.length) return { skipped: `missing ${missing.join(', ')}` };
  const ns = `${PREFIX}-bench`;
  await labDown(PREFIX);
  await recordNamespace(PREFIX, ns);
  await run(['ip', 'netns', 'add', ns]);
  try {
    const ovs = new OvsInstance({ prefix: PREFIX, node: 'bench', ns });
    await ovs.start();
    await ovs.addBridge();
    const node = model.nodes.find((n) => n.name === 'node-a')!;
    for (const p of new Set([2, 3, ...node.pods.map((x) => x.ofport)]))
      await ovs.addPort(`p${p}`, p, ['type=internal']);
    const text = renderProgram(node.compiled);
    await applyProgram(ovs.openflowTarget(), text.groups, text.flows);
    const calls = list.slice(0, OVS_CALLS).map((s) => {
      const r = simulate(node.program, s.inPort, s.packet, { conntrack: s.ct.clone() });
      return [
        'ofproto/trace',
        'br-int',
        flowSpec(s.inPort, s.packet),
        ...ctNext(r).flatMap((st) => ['--ct-next', st]),
      ];
    });
    const t0 = performance.now();
    for (const args of calls) await ovs.appctl(args);
    const ms = performance.now() - t0;
    return { calls: calls.length, ms: round(ms), perSecond: round((calls.length / ms) * 1000) };
  } finally {
    await labDown(PREFIX);
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

export async function runSimBench(): Promise<Record<string, unknown>> {
  const { model, samples: list } = samples();
  const node = model.nodes.find((n) => n.name === 'node-a')!;
  // Simulator: the same packets, each from its own conntrack snapshot, without trace recording.
  const cts = list.map((s) => s.ct);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000)
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      simulate(node.program, s.inPort, s.packet, { conntrack: cts[i].clone(), trace: false });
      n++;
    }
  const simMs = performance.now() - t0;
  const simRate = (n / simMs) * 1000;
  const ovs = await ovsRate(model, list);

  // 10k Services over 10 nodes: build the cluster once, then one traced TCP connection.
  const state = syntheticCluster(10_000, 3, 10);
  const tb = performance.now();
  const big = buildClusterModel(
    state,
    { ...DEFAULT_CONFIG, nodes: {} },
    {
      underlayCIDR: '192.168.0.0/16',
    },
  );
  const buildMs = performance.now() - tb;
  const bigSim = new ClusterSim(big);
  const pod = big.nodes[0].pods[0];
  const svc = state.services[1234];
  const dst = { ip: svc.clusterIPs[0], port: 80, protocol: 'TCP' as const };
  const times: number[] = [];
  let delivered = false;
  for (let i = 0; i < 20; i++) {
    bigSim.reset();
    const t = performance.now();
    const c = runConnection(bigSim, { kind: 'pod', node: big.nodes[0].name, ip: pod.ip }, dst, {
      trace: true,
    });
    times.push(performance.now() - t);
    delivered = !c.stopped && c.steps.every((s) => s.journey.verdict === 'delivered');
  }
  times.sort((a, b) => a - b);
  return {
    simulator: {
      packets: n,
      ms: round(simMs),
      perSecond: Math.round(simRate),
      samples: list.length,
    },
    ofprotoTrace: ovs,
    speedup: typeof ovs.perSecond === 'number' ? `${Math.round(simRate / ovs.perSecond)}x` : 'n/a',
    target: '>= 100x',
    connection10k: {
      services: state.services.length,
      nodes: big.nodes.length,
      flowsPerNode: big.nodes.map((x) => x.compiled.flows.length)[0],
      modelAndIndexBuildMs: round(buildMs),
      fullTcpConnectionTraceMs: { median: round(times[10]), max: round(times[19]) },
      delivered,
      target: '< 10 ms',
    },
  };
}
