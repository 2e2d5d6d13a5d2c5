// Compile benchmark: 10k Services × 10 endpoints vs 100 × 10, in one run.
import { parseConfig } from '../src/config/config.js';
import { resolveNode } from '../src/config/resolve.js';
import { compileNode } from '../src/pipeline/compile.js';
import { renderProgram } from '../src/openflow/render.js';
import { syntheticCluster } from './synthetic.js';

function timeCompile(services: number, endpoints: number) {
  const state = syntheticCluster(services, endpoints);
  const config = parseConfig([]);
  const t0 = process.hrtime.bigint();
  const dp = resolveNode(state, config, 'node-0');
  const compiled = compileNode(state, dp);
  const t1 = process.hrtime.bigint();
  const text = renderProgram(compiled);
  const t2 = process.hrtime.bigint();
  const ports = compiled.servicePorts.length;
  return {
    services,
    endpoints,
    compileMs: Number(t1 - t0) / 1e6,
    renderMs: Number(t2 - t1) / 1e6,
    totalMs: Number(t2 - t0) / 1e6,
    flows: compiled.flows.length,
    groups: compiled.groups.length,
    flowsPerServicePort: compiled.flows.length / ports,
    groupsPerServicePort: compiled.groups.length / ports,
    textMB: (text.flows.length + text.groups.length) / 1e6,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Three timed runs; the median of each measure is reported, with every run for the record. */
function timeRuns(services: number, endpoints: number) {
  const runs = [0, 1, 2].map(() => {
    // Start each run from a collected heap (node --expose-gc), so peak RSS is one run's peak.
    (globalThis as { gc?: () => void }).gc?.();
    return timeCompile(services, endpoints);
  });
  return {
    ...runs[0],
    compileMs: median(runs.map((r) => r.compileMs)),
    renderMs: median(runs.map((r) => r.renderMs)),
    totalMs: median(runs.map((r) => r.totalMs)),
    runs: runs.map((r) => ({ compileMs: r.compileMs, renderMs: r.renderMs })),
  };
}

export function runCompileBench(): Record<string, unknown> {
  timeCompile(100, 10); // warm the JIT so the baseline is not all start-up
  const small = timeRuns(100, 10);
  const large = timeRuns(10_000, 10);
  const peakRssMB = process.resourceUsage().maxRSS / 1024;
  return {
    small,
    large,
    // The target is the pure compile (state → flows and groups); rendering the 40 MB of
    // ovs-ofctl text is reported beside it.
    ratioLargeToSmall: large.compileMs / small.compileMs,
    ratioLargeToSmallWithRender: large.totalMs / small.totalMs,
    peakRssMB,
    targets: { largeCompileMsMax: 1000, peakRssMBMax: 500 },
    pass: large.compileMs <= 1000 && peakRssMB <= 500,
  };
}
