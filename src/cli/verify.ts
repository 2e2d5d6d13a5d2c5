// `svcflow verify`: every lab path as a whole connection in the simulator, checked against the
// contract of docs/pipeline.md. Exit 0 only when every path passes.
import type { Command } from 'commander';
import { buildClusterModel } from '../sim/cluster.js';
import { verifyCluster, type CaseResult } from '../sim/verify.js';
import { UsageError } from './compile.js';
import { formatRejection, loadInputs } from './context.js';

function row(c: CaseResult): string[] {
  const expect = c.path.mustFail
    ? `must fail: ${c.path.mustFail}`
    : `${c.target?.name ?? '?'} sees ${c.target?.peer ?? '?'}`;
  return [
    c.ok ? 'pass' : 'FAIL',
    c.path.group,
    c.path.name,
    `${c.path.dest.ip}:${c.path.dest.port}/${c.path.protocol}`,
    expect,
    c.ok ? (c.saw ?? 'not delivered') : c.problems.map((p) => `${p.check}: ${p.detail}`).join('; '),
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) =>
    Math.min(60, Math.max(...rows.map((r) => (i === r.length - 1 ? 0 : r[i].length)))),
  );
  return rows
    .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '))
    .join('\n');
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('run every traffic path in the simulator and check the pipeline contract')
    .option('--cluster <file>', 'cluster file; default: the bundled example')
    .option('--config <file>', 'svcflow config document')
    .option('--json', 'machine-readable output')
    .action((opts: { cluster?: string; config?: string; json?: boolean }) => {
      const loaded = loadInputs(opts.cluster, opts.config);
      for (const r of loaded.rejections) process.stderr.write(formatRejection(r) + '\n');
      let report;
      try {
        report = verifyCluster(buildClusterModel(loaded.state, loaded.config));
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (opts.json)
        process.stdout.write(
          JSON.stringify(
            {
              passed: report.passed,
              failed: report.failed,
              cases: report.cases.map((c) => ({
                group: c.path.group,
                path: c.path.name,
                source: c.path.source,
                protocol: c.path.protocol,
                dest: c.path.dest,
                server: c.target,
                mustFail: c.path.mustFail,
                ok: c.ok,
                reached: c.reached,
                saw: c.saw,
                packets: c.packets,
                problems: c.problems,
              })),
            },
            null,
            2,
          ) + '\n',
        );
      else {
        const head = ['', 'group', 'path', 'destination', 'expected', 'server saw / problems'];
        process.stdout.write(table([head, ...report.cases.map(row)]) + '\n');
        process.stdout.write(
          `\n${report.passed}/${report.cases.length} path runs pass` +
            (report.failed ? `, ${report.failed} FAIL\n` : '\n'),
        );
      }
      // main sets the exit code after the command returns; a failing verify must still exit 1.
      if (report.failed) process.once('exit', () => (process.exitCode = 1));
    });
}
