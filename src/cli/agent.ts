// `svcflow agent`: run the node agent until SIGTERM/SIGINT. Stopping leaves flows in place, so
// a restart (or an upgrade) never interrupts traffic; the next start installs a new round.
import type { Command } from 'commander';
import { pino } from 'pino';

import { Agent } from '../agent/agent.js';
import { loadAgentSettings, type AgentFlags } from '../agent/config.js';
import { HealthCheckServers } from '../agent/healthcheck.js';
import { linuxHostBackend, type HostBackend } from '../agent/host.js';
import { KubeSource } from '../agent/kube.js';
import { ManifestSource } from '../agent/manifest.js';
import { AgentMetrics } from '../agent/metrics.js';
import { startAgentServer } from '../agent/server.js';
import { mgmtSocketPath } from '../agent/switch-watch.js';
import { windowsHostBackend } from '../host/windows.js';
import { readLocalPods } from '../ovs/ovsdb.js';
import { ofctlRunner } from '../ovs/sync.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: watch the cluster, keep br-int and the host in sync')
    .option('--config <file>', 'agent config file (YAML, kind SvcflowAgentConfig)')
    .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster, else ~/.kube/config)')
    .option(
      '--manifest <path>',
      'take the cluster from a manifest file or directory instead of the API',
    )
    .option('--node <name>', 'this node (default: $NODE_NAME, else the host name)')
    .option('--bridge <name>', 'OVS bridge (default br-int)')
    .option('--ofctl-target <switch>', 'ovs-ofctl switch argument (default: the bridge)')
    .option('--metrics-address <host:port>', '/metrics and /healthz (default 127.0.0.1:10256)')
    .option('--host <backend>', 'host backend: linux, windows or none')
    .option('--log-level <level>', 'trace, debug, info, warn, error')
    .action(async (flags: AgentFlags) => {
      const s = loadAgentSettings(flags);
      const log = pino({ level: s.logLevel, base: { node: s.nodeName } });
      const metrics = new AgentMetrics({ processMetrics: true });
      const source = s.manifest
        ? new ManifestSource(s.manifest, { log })
        : new KubeSource({ nodeName: s.nodeName, kubeconfig: s.kubeconfig, log });
      let host: HostBackend | undefined;
      if (s.host === 'linux') host = linuxHostBackend();
      else if (s.host === 'windows') host = windowsHostBackend();
      const vsctl = s.vsctl;
      const ofctlTarget = s.ofctlTarget ?? s.dataplane.bridge;
      const agent = new Agent({
        nodeName: s.nodeName,
        config: s.dataplane,
        source,
        ofctl: ofctlRunner({ switch: ofctlTarget }),
        switchSocket: mgmtSocketPath(ofctlTarget),
        localPods:
          vsctl.length === 0
            ? undefined
            : async () => {
                const { pods, problems } = await readLocalPods({ command: vsctl });
                for (const p of problems)
                  log.warn({ iface: p.iface, reason: p.reason }, 'OVSDB interface ignored');
                return pods;
              },
        host,
        healthChecks: new HealthCheckServers(s.healthCheckBindAddress, log),
        log,
        metrics,
        minSyncIntervalMs: s.minSyncIntervalMs,
        maxSyncIntervalMs: s.maxSyncIntervalMs,
      });
      const server = await startAgentServer(s.metricsAddress, metrics, agent);
      log.info({ address: s.metricsAddress }, 'serving /metrics and /healthz');
      await agent.start();
      await new Promise<void>((resolve) => {
        const done = (signal: string) => {
          log.info({ signal }, 'shutting down');
          resolve();
        };
        process.once('SIGTERM', () => done('SIGTERM'));
        process.once('SIGINT', () => done('SIGINT'));
      });
      await agent.stop();
      await server.close();
    });
}
