// `svcflow trace`: one packet or one whole connection through the simulated cluster, hop by hop.
import type { Command } from 'commander';
import { buildClusterModel, ClusterSim, parseDestination } from '../sim/cluster.js';
import { runConnection } from '../sim/connection.js';
import { connectionJson, connectionText } from '../sim/describe.js';
import { UsageError } from './compile.js';
import { formatRejection, loadInputs } from './context.js';

interface TraceOpts {
  connection?: boolean;
  json?: boolean;
  cluster?: string;
  config?: string;
  bucket?: string;
  sport: string;
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description(
      'follow a packet (or with --connection a whole connection) through the simulated cluster',
    )
    .argument('<src>', 'pod:NS/NAME | host:NODE | external:IP | an IP')
    .argument('<dst>', 'IP:PORT/PROTO | service:NS/NAME[:PORT] | nodeport:NODE/NS/NAME[:PORT]')
    .option('--connection', 'TCP: handshake, data both ways, FIN/ACK close; UDP: request, reply')
    .option('--json', 'machine-readable output')
    .option('--cluster <file>', 'cluster file; default: the bundled example')
    .option('--config <file>', 'svcflow config document')
    .option('--bucket <n>', 'force this select-group bucket instead of hashing')
    .option('--sport <port>', 'client source port', '40000')
    .action((src: string, dst: string, opts: TraceOpts) => {
      const loaded = loadInputs(opts.cluster, opts.config);
      for (const r of loaded.rejections) process.stderr.write(formatRejection(r) + '\n');
      const bucket = opts.bucket === undefined ? undefined : Number(opts.bucket);
      if (bucket !== undefined && (!Number.isInteger(bucket) || bucket < 0))
        throw new UsageError(`--bucket must be a bucket index, got ${opts.bucket}`);
      const sport = Number(opts.sport);
      if (!Number.isInteger(sport) || sport < 1 || sport > 65535)
        throw new UsageError(`--sport must be 1-65535, got ${opts.sport}`);
      let conn;
      let model;
      try {
        model = buildClusterModel(loaded.state, loaded.config);
        const sim = new ClusterSim(model);
        const from = sim.place(src);
        const to = parseDestination(model, dst);
        conn = runConnection(sim, from, to, {
          single: !opts.connection,
          sport,
          chooseBucket: bucket === undefined ? undefined : () => bucket,
        });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (opts.json)
        process.stdout.write(JSON.stringify(connectionJson(model, conn), null, 2) + '\n');
      else process.stdout.write(connectionText(model, conn));
      // Not delivered end to end: exit 1 (main sets the code after this returns).
      const ok = !conn.stopped && conn.steps.every((s) => s.journey.verdict === 'delivered');
      if (!ok) process.once('exit', () => (process.exitCode = 1));
    });
}
