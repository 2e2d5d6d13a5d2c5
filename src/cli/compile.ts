// `svcflow compile`: print one node's pipeline.
import type { Command } from 'commander';
import { compileNode } from '../pipeline/compile.js';
import { unsupportedSettings } from '../pipeline/services.js';
import { renderProgram, renderFlow, renderGroup } from '../openflow/render.js';
import { buildHostPlan } from '../host/plan.js';
import { formatRejection, loadInputs, nodeOf } from './context.js';

export function registerCompile(program: Command): void {
  program
    .command('compile')
    .description("compile a node's OpenFlow pipeline (groups first, then flows)")
    .option(
      '--cluster <file>',
      'cluster file (kubectl get … -o yaml); default: the bundled example',
    )
    .option('--config <file>', 'svcflow config document (data-plane settings)')
    .option('--node <name>', 'node to compile for (default: first node by name)')
    .option('--format <format>', 'ofctl | json', 'ofctl')
    .option('--round <n>', 'cookie round number', '1')
    .action(
      (opts: {
        cluster?: string;
        config?: string;
        node?: string;
        format: string;
        round: string;
      }) => {
        if (opts.format !== 'ofctl' && opts.format !== 'json')
          throw new UsageError(`--format must be ofctl or json, got ${opts.format}`);
        const round = Number(opts.round);
        if (!Number.isInteger(round) || round < 0 || round > 0xffff)
          throw new UsageError(`--round must be 0-65535, got ${opts.round}`);
        const loaded = loadInputs(opts.cluster, opts.config);
        for (const r of loaded.rejections) process.stderr.write(formatRejection(r) + '\n');
        for (const n of unsupportedSettings(loaded.state)) process.stderr.write(`warning: ${n}\n`);
        const dp = nodeOf(loaded, opts.node);
        const compiled = compileNode(loaded.state, dp, { round });
        if (opts.format === 'ofctl') {
          const text = renderProgram(compiled);
          process.stdout.write(
            `# groups (${compiled.groups.length})\n${text.groups}# flows (${compiled.flows.length})\n${text.flows}`,
          );
        } else {
          const out = {
            node: dp.nodeName,
            dataplane: dp,
            hostPlan: buildHostPlan(loaded.state, dp),
            groups: compiled.groups.map((g) => ({ id: g.id, text: renderGroup(g) })),
            flows: compiled.flows.map((f) => ({
              table: f.table,
              priority: f.priority,
              cookie: '0x' + f.cookie.toString(16),
              text: renderFlow(f),
            })),
            rejections: loaded.rejections,
          };
          process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        }
      },
    );
}

export class UsageError extends Error {}
