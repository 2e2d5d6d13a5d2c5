// `svcflow lab up|test|down`: the compiled pipeline in a namespace lab, and real TCP/UDP through
// every path of docs/pipeline.md. Needs root and Open vSwitch (scripts/setup.sh).
import type { Command } from 'commander';

import {
  clusterLabDown,
  clusterLabUp,
  DEFAULT_PREFIX,
  formatResults,
  openClusterLab,
  runClusterLabPaths,
} from '../lab/cluster-lab.js';

const err = (line: string) => process.stderr.write(line + '\n');

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('run the compiled pipeline in a network-namespace lab (root, Open vSwitch)');

  lab
    .command('up')
    .description('build the lab for a cluster (leftovers of the same prefix are removed first)')
    .option('--cluster <file>', 'cluster file; default: the bundled two-node example')
    .option('--config <file>', 'svcflow config (default: svcflow.yaml next to the cluster file)')
    .option('--prefix <prefix>', 'namespace prefix', DEFAULT_PREFIX)
    .option('--external-ip <ip>', 'external client address on the underlay')
    .action(
      async (opts: { cluster?: string; config?: string; prefix: string; externalIp?: string }) => {
        await clusterLabUp(
          {
            clusterPath: opts.cluster,
            configPath: opts.config,
            prefix: opts.prefix,
            externalIP: opts.externalIp,
          },
          err,
        );
        err(`lab ${opts.prefix} is up: svcflow lab test --prefix ${opts.prefix}`);
      },
    );

  lab
    .command('test')
    .description('send TCP/UDP through every path; exit 0 only when all pass')
    .option('--prefix <prefix>', 'namespace prefix', DEFAULT_PREFIX)
    .option('--only <text>', 'only paths whose name or group contains the text')
    .option('--json', 'print the results as JSON')
    .action(async (opts: { prefix: string; only?: string; json?: boolean }) => {
      const t0 = Date.now();
      const cl = await openClusterLab(opts.prefix);
      const results = await runClusterLabPaths(cl, { only: opts.only, log: err });
      if (opts.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else process.stdout.write(formatResults(results));
      err(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
      // commander returns normally; the exit status is the verdict
      if (results.some((r) => !r.ok)) process.exit(1);
    });

  lab
    .command('down')
    .description('remove the lab: its processes (by pid), namespaces and files')
    .option('--prefix <prefix>', 'namespace prefix', DEFAULT_PREFIX)
    .action(async (opts: { prefix: string }) => {
      const report = await clusterLabDown(opts.prefix);
      err(
        `lab ${opts.prefix} down: ${report.killed.length} processes, ${report.namespaces.length} namespaces`,
      );
      if (report.survivors.length) {
        err(`pids still alive: ${report.survivors.join(' ')}`);
        process.exit(1);
      }
    });
}
