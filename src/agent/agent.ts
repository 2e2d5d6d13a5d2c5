// The node agent: cluster events in, OpenFlow bundles (and host changes) out. Events only mark
// what changed; the bounded-frequency runner decides when to sync; each sync validates the raw
// objects (bad ones are rejected one by one), recompiles the changed Services, and applies the
// difference to OVS in one bundle. Stopping leaves every flow in place.

import type { Logger } from 'pino';

import { NodeError } from '../config/resolve.js';
import type { LocalPod, NodeDataplane, SvcflowConfig } from '../config/types.js';
import { buildHostPlan } from '../host/plan.js';
import type { ClusterState, Rejection } from '../model/types.js';
import { OvsSync, type OfctlRunner, type SyncResult } from '../ovs/sync.js';
import { realClock, type BackoffOptions, type Clock } from './clock.js';
import { DesiredProgram } from './desired.js';
import type { HealthCheckServers, HealthCheckService } from './healthcheck.js';
import type { HostBackend } from './host.js';
import type { AgentMetrics } from './metrics.js';
import { resolveNodeLive } from './resolve.js';
import { BoundedFrequencyRunner, type SyncReason } from './runner.js';
import type { ClusterSource, RawObject, SourceEvent } from './source.js';
import { ObjectStore } from './store.js';
import { SwitchWatch } from './switch-watch.js';
import { ValidatedState } from './validated.js';

export interface AgentOptions {
  nodeName: string;
  config: SvcflowConfig;
  source: ClusterSource;
  ofctl: OfctlRunner;
  /** pods on the bridge (OVSDB); undefined result = use the offline derivation */
  localPods?: () => Promise<LocalPod[] | undefined>;
  host?: HostBackend;
  healthChecks?: HealthCheckServers;
  log: Logger;
  metrics?: AgentMetrics;
  clock?: Clock;
  minSyncIntervalMs?: number;
  maxSyncIntervalMs?: number;
  retry?: BackoffOptions;
  /** /healthz turns unhealthy when changes stay unsynced this long */
  healthTimeoutMs?: number;
  /**
   * The bridge's management socket: a standing connection there tells at once when
   * ovs-vswitchd restarts (replay without waiting), and that it did not (no per-sync count).
   */
  switchSocket?: string;
}

/** A failed sync, with the stage that failed (metrics label). */
export class SyncError extends Error {
  constructor(
    readonly stage: 'resolve' | 'ovsdb' | 'ovs' | 'host',
    override readonly cause: unknown,
  ) {
    super(`${stage}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

export interface SyncSummary {
  skipped?: string;
  recompiled?: number;
  ovs?: SyncResult;
  hostChanges?: number;
}

const rejectionKey = (r: Rejection) =>
  `${r.kind}|${r.namespace ?? ''}|${r.name}|${r.field}|${r.reason}`;

export class Agent {
  readonly store = new ObjectStore();
  readonly runner: BoundedFrequencyRunner;
  private readonly ovs: OvsSync;
  private readonly clock: Clock;
  private desired?: DesiredProgram;
  private rejections = new Set<string>();
  private hostKey = '';
  private lastSuccess?: number;
  private dirtySince?: number;
  private started = false;
  private readonly watch?: SwitchWatch;
  private readonly validated: ValidatedState;
  /** the last resolved data plane, reused while none of its inputs changed */
  private dp?: NodeDataplane;
  private dpStale = true;
  private localPodsKey = '';
  private hostStale = true;
  /** the switch restarted since the last sync: re-read it, replay, re-apply the host */
  private switchRestarted = false;
  /** the watch generation the cached switch state belongs to */
  private syncedGeneration = -1;
  /** summary of the last sync attempt (tests, debugging) */
  last?: SyncSummary;

  constructor(private readonly o: AgentOptions) {
    this.clock = o.clock ?? realClock;
    this.ovs = new OvsSync(o.ofctl);
    this.validated = new ValidatedState(o.nodeName);
    if (o.switchSocket)
      this.watch = new SwitchWatch(
        o.switchSocket,
        {
          onDown: () => {
            this.ovs.invalidate(true);
            this.o.log.warn('lost the connection to ovs-vswitchd');
          },
          onUp: (restart) => {
            if (!restart) return;
            this.ovs.invalidate(true);
            this.switchRestarted = true;
            this.o.log.warn('ovs-vswitchd is back: replaying');
            this.runner.request({ now: true });
          },
        },
        { clock: o.clock },
      );
    this.runner = new BoundedFrequencyRunner(
      (r) => this.sync(r).then((s) => void (this.last = s)),
      {
        minIntervalMs: o.minSyncIntervalMs ?? 1000,
        maxIntervalMs: o.maxSyncIntervalMs ?? 60_000,
        retry: o.retry ?? { initialMs: 1000, maxMs: 30_000 },
        clock: this.clock,
        onError: (err, ms) => {
          const stage = err instanceof SyncError ? err.stage : 'internal';
          this.o.metrics?.syncErrors.inc({ stage });
          this.o.log.error(
            { err: err instanceof Error ? err.message : String(err), stage, retryInMs: ms },
            'sync failed',
          );
        },
      },
    );
  }

  get round(): number | undefined {
    return this.desired?.round;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.o.source.start((ev) => this.onEvent(ev));
    this.watch?.start();
    this.runner.start();
    this.o.log.info({ node: this.o.nodeName, source: this.o.source.name }, 'agent started');
  }

  /** Stop watching and syncing. Flows, groups and host settings stay as they are. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.o.source.stop();
    this.watch?.stop();
    await this.runner.stop();
    await this.o.healthChecks?.close();
    this.o.log.info('agent stopped; flows left in place');
  }

  /** Healthy once synced, and no change has waited longer than the timeout. */
  health(): { healthy: boolean; lastUpdated?: number; now: number } {
    const now = this.clock.now();
    const timeout = this.o.healthTimeoutMs ?? 2 * (this.o.maxSyncIntervalMs ?? 60_000);
    const healthy =
      this.lastSuccess !== undefined &&
      (this.dirtySince === undefined || now - this.dirtySince <= timeout);
    return { healthy, lastUpdated: this.lastSuccess, now };
  }

  private onEvent(ev: SourceEvent): void {
    const wasReady = this.store.ready;
    let changed: boolean;
    try {
      changed = this.store.apply(ev);
    } catch (err) {
      this.o.log.warn({ err: String(err) }, 'event dropped');
      return;
    }
    if (changed || (this.store.ready && !wasReady)) {
      this.dirtySince ??= this.clock.now();
      this.runner.request();
    }
  }

  /** One sync; exposed for tests. Throws SyncError on failure (the runner retries). */
  async sync(reason: SyncReason = { periodic: false, retry: false }): Promise<SyncSummary> {
    if (!this.store.ready) return { skipped: 'waiting for the first full list of every kind' };
    const started = this.clock.now();
    const endTimer = this.o.metrics?.syncDuration.startTimer();
    try {
      const summary = await this.syncInner(reason);
      this.lastSuccess = this.clock.now();
      this.dirtySince = undefined;
      this.o.metrics?.lastSync.set(this.lastSuccess / 1000);
      return summary;
    } catch (err) {
      this.dirtySince ??= started;
      throw err;
    } finally {
      endTimer?.();
    }
  }

  private async syncInner(reason: SyncReason): Promise<SyncSummary> {
    const changes = this.store.takeChanges();
    const v = this.validated.update(this.store, this.store.takeChangedKeys());
    const { state, rejections } = v;
    this.reportRejections(rejections);
    // sticky until a resolve succeeds: a failed sync must not lose the reason to resolve
    this.dpStale ||= v.dataplaneInputs;
    this.hostStale ||= v.services;

    let localPods: LocalPod[] | undefined;
    try {
      localPods = await this.o.localPods?.();
    } catch (err) {
      this.restore(changes);
      throw new SyncError('ovsdb', err);
    }
    const podsKey = localPods ? JSON.stringify(localPods) : '';
    let dp: NodeDataplane;
    if (this.dp && !this.dpStale && podsKey === this.localPodsKey) dp = this.dp;
    else
      try {
        dp = resolveNodeLive(state, this.o.config, this.o.nodeName, { localPods });
        this.dp = dp;
        this.dpStale = false;
        this.localPodsKey = podsKey;
        this.hostStale = true;
      } catch (err) {
        this.restore(changes);
        if (err instanceof NodeError) throw new SyncError('resolve', err);
        throw err;
      }

    let fresh = false;
    if (!this.desired) {
      // first sync of this process: a new cookie round, installed next to the old one
      try {
        this.desired = new DesiredProgram(await this.ovs.pickRound());
      } catch (err) {
        this.restore(changes);
        throw new SyncError('ovs', err);
      }
      fresh = true;
      this.o.log.info({ round: this.desired.round }, 'new cookie round');
    }
    const stats = this.desired.update(state, dp, changes, (k) => this.validated.slicesOf(k));
    this.o.metrics?.recompiled.inc(stats.recompiled);
    const program = this.desired.view();

    let ovs: SyncResult;
    const restarted = this.switchRestarted;
    this.switchRestarted = false;
    // the standing connection vouches for the cache only if it is the one we last synced under
    const generation = this.watch?.up ? this.watch.generation : -1;
    try {
      ovs = await this.ovs.sync(program, {
        verify: reason.periodic || reason.retry || fresh || restarted,
        trusted: generation >= 0 && generation === this.syncedGeneration,
      });
    } catch (err) {
      this.switchRestarted ||= restarted;
      this.syncedGeneration = -1;
      throw new SyncError('ovs', err);
    }
    this.syncedGeneration = generation;
    const p = ovs.plan;
    const m = this.o.metrics;
    if (m) {
      m.flows.set(ovs.flows);
      m.groups.set(ovs.groups);
      m.bundleChanges.inc({ op: 'group_add' }, p.groupAdds.length);
      m.bundleChanges.inc({ op: 'group_modify' }, p.groupMods.length);
      m.bundleChanges.inc({ op: 'flow_add' }, p.flowAdds.length);
      m.bundleChanges.inc({ op: 'flow_delete' }, p.flowDeletes.length);
      m.bundleChanges.inc({ op: 'group_delete' }, p.groupDeletes.length);
      if (ovs.replayed) m.replays.inc();
    }
    if (ovs.replayed)
      this.o.log.warn('OVS lost our flows (ovs-vswitchd restart?): replayed everything');
    const changed =
      p.flowAdds.length +
      p.flowDeletes.length +
      p.groupAdds.length +
      p.groupMods.length +
      p.groupDeletes.length;
    this.o.log[changed > 0 ? 'info' : 'debug'](
      {
        recompiled: stats.recompiled,
        removed: stats.removed,
        flows: ovs.flows,
        groups: ovs.groups,
        flowAdds: p.flowAdds.length,
        flowDeletes: p.flowDeletes.length,
        groupAdds: p.groupAdds.length,
        groupMods: p.groupMods.length,
        groupDeletes: p.groupDeletes.length,
        periodic: reason.periodic,
      },
      'synced',
    );

    let hostChanges = 0;
    const forceHost = reason.periodic || restarted || ovs.replayed;
    // the host plan depends on Services and the data plane only: skip building it otherwise
    if (this.o.host && (this.hostStale || forceHost || this.hostKey === '')) {
      const plan = buildHostPlan(state, dp);
      const key = JSON.stringify(plan);
      // a restarted userspace switch recreates its internal ports bare: routes on them are gone
      if (key !== this.hostKey || forceHost) {
        try {
          const done = await this.o.host.apply(plan);
          hostChanges = done.length;
          for (const c of done) this.o.log.info({ command: c.command, why: c.why }, 'host changed');
          this.hostKey = key;
        } catch (err) {
          this.hostKey = '';
          throw new SyncError('host', err);
        }
      }
      this.hostStale = false;
    }

    if (this.o.healthChecks)
      await this.o.healthChecks.update(healthCheckServices(state, this.store.objects(), dp));
    return { recompiled: stats.recompiled, ovs, hostChanges };
  }

  /** A sync that failed before compiling gives its change hints back for the retry. */
  private restore(changes: ReturnType<ObjectStore['takeChanges']>): void {
    this.store.giveBack(changes);
  }

  private reportRejections(rejections: Rejection[]): void {
    const now = new Set<string>();
    for (const r of rejections) {
      const k = rejectionKey(r);
      now.add(k);
      if (this.rejections.has(k)) continue;
      this.o.metrics?.rejected.inc({ kind: r.kind });
      this.o.log.warn(
        { kind: r.kind, namespace: r.namespace, name: r.name, field: r.field, reason: r.reason },
        'object rejected',
      );
    }
    this.rejections = now;
    this.o.metrics?.rejectedNow.set(now.size);
  }
}

const isObj = (v: unknown): v is RawObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Health-check servers wanted: ETP=Local Services with a healthCheckNodePort. ServiceInfo does
 * not carry that port, so it is read from the raw object; the endpoint count is the ready
 * endpoints on this node.
 */
export function healthCheckServices(
  state: ClusterState,
  raw: RawObject[],
  dp: NodeDataplane,
): HealthCheckService[] {
  const hcPort = new Map<string, number>();
  for (const o of raw) {
    if (o.kind !== 'Service' || !isObj(o.metadata) || !isObj(o.spec)) continue;
    const p = o.spec.healthCheckNodePort;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) continue;
    const ns =
      typeof o.metadata.namespace === 'string' && o.metadata.namespace
        ? o.metadata.namespace
        : 'default';
    hcPort.set(`${ns}/${String(o.metadata.name)}`, p);
  }
  const localIPs = new Set([...dp.localPods.map((p) => p.ip), ...dp.nodeIPs]);
  const out: HealthCheckService[] = [];
  for (const svc of state.services) {
    const key = `${svc.namespace}/${svc.name}`;
    const port = hcPort.get(key);
    if (port === undefined || svc.externalTrafficPolicy !== 'Local' || svc.type === 'ExternalName')
      continue;
    const ips = new Set<string>();
    for (const s of state.endpointSlices)
      if (s.namespace === svc.namespace && s.serviceName === svc.name)
        for (const e of s.endpoints)
          if (e.ready && (e.nodeName === dp.nodeName || localIPs.has(e.ip))) ips.add(e.ip);
    out.push({ namespace: svc.namespace, name: svc.name, port, localEndpoints: ips.size });
  }
  return out.sort((a, b) => a.port - b.port);
}
