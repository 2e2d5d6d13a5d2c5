// `npm run bench [-- NAME…]`: runs the benchmarks and prints one JSON report.
// Numbers are reported against a baseline measured in the same run (machines are noisy).
import { runAgentBench } from './agent.js';
import { runCompileBench } from './compile.js';
import { runLabBench } from './lab.js';
import { runSimBench } from './sim.js';

type Bench = () => Promise<Record<string, unknown>> | Record<string, unknown>;
const benches: Record<string, Bench> = {
  agent: runAgentBench,
  compile: runCompileBench,
  lab: () => runLabBench(),
  sim: runSimBench,
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const report: Record<string, unknown> = {};
for (const [name, fn] of Object.entries(benches)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  process.stderr.write(`bench ${name}…\n`);
  report[name] = await fn();
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
