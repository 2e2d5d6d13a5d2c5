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

export function runCompileBench(): Record<string, unknown> {
  timeCompile(100, 10); // warm the JIT so the baseline is not all start-up
  const small = timeCompile(100, 10);
  const large = timeCompile(10_000, 10);
  const peakRssMB = process.resourceUsage().maxRSS / 1024;
  return {
    small,
    large,
    ratioLargeToSmall: large.totalMs / small.totalMs,
    peakRssMB,
    targets: { largeTotalMsMax: 1000, peakRssMBMax: 500 },
    pass: large.totalMs <= 1000 && peakRssMB <= 500,
  };
}
