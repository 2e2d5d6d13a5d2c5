// Prometheus metrics of the agent, on a registry of its own (never the global default, so tests
// and embedded use do not collide).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly syncDuration = new Histogram({
    name: 'svcflow_sync_duration_seconds',
    help: 'Duration of one sync (validate, compile changed Services, apply to OVS and host)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly syncErrors = new Counter({
    name: 'svcflow_sync_errors_total',
    help: 'Syncs that failed (retried with backoff)',
    labelNames: ['stage'],
    registers: [this.registry],
  });
  readonly flows = new Gauge({
    name: 'svcflow_flows_installed',
    help: 'Flows installed by the last successful sync',
    registers: [this.registry],
  });
  readonly groups = new Gauge({
    name: 'svcflow_groups_installed',
    help: 'Groups installed by the last successful sync',
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'svcflow_objects_rejected_total',
    help: 'Invalid objects rejected (each distinct problem counted once when it appears)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly rejectedNow = new Gauge({
    name: 'svcflow_objects_rejected',
    help: 'Objects currently rejected',
    registers: [this.registry],
  });
  readonly recompiled = new Counter({
    name: 'svcflow_services_recompiled_total',
    help: 'Service units compiled',
    registers: [this.registry],
  });
  readonly bundleChanges = new Counter({
    name: 'svcflow_bundle_changes_total',
    help: 'Flow and group changes sent to OVS',
    labelNames: ['op'],
    registers: [this.registry],
  });
  readonly replays = new Counter({
    name: 'svcflow_ovs_replays_total',
    help: 'Full replays after OVS lost our flows',
    registers: [this.registry],
  });
  readonly lastSync = new Gauge({
    name: 'svcflow_last_sync_timestamp_seconds',
    help: 'Time of the last successful sync',
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
