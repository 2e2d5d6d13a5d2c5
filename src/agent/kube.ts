// Cluster state from the Kubernetes API: one reflector per kind (Services, EndpointSlices,
// Nodes, and this node's Pods). A reflector lists, emits the list as a snapshot of its kind,
// then watches from the list's resourceVersion. Any failure restarts it after a capped,
// jittered exponential backoff; a 410 Gone (history compacted) relists at once; a periodic
// relist repairs anything missed; a watch that stays silent past the staleness limit (no event,
// no bookmark) is presumed dead and restarted.

import { CoreV1Api, DiscoveryV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { Backoff, realClock, type Clock, type TimerHandle } from './clock.js';
import type { ClusterSource, Kind, RawObject, SourceEvent } from './source.js';

export interface KubeSourceOptions {
  nodeName: string;
  /** a kubeconfig file; without it: in-cluster config, else the default kubeconfig */
  kubeconfig?: string;
  /** a ready KubeConfig (tests) */
  kc?: KubeConfig;
  clock?: Clock;
  random?: () => number;
  log?: Pick<Logger, 'info' | 'warn' | 'debug'>;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** full relist period (default 15 minutes) */
  relistMs?: number;
  /** restart a watch that delivered nothing (not even a bookmark) for this long (default 5 minutes) */
  staleMs?: number;
  /** server-side watch timeout, seconds (default 5-10 minutes, randomised per watch) */
  watchTimeoutSeconds?: number;
  /** page size of lists */
  pageSize?: number;
}

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

interface ListResult {
  items: RawObject[];
  resourceVersion: string;
}

interface KindSpec {
  kind: Kind;
  apiVersion: string;
  watchPath: string;
  fieldSelector?: string;
  list(
    continueToken: string | undefined,
    limit: number,
  ): Promise<{ items: unknown[]; metadata?: { resourceVersion?: string; _continue?: string } }>;
}

/** The typed client hands back class instances; the validator wants plain JSON objects. */
function plain(o: unknown, kind: string, apiVersion: string): RawObject {
  const v = JSON.parse(JSON.stringify(o)) as RawObject;
  return { ...v, kind, apiVersion };
}

const statusCode = (err: unknown): number | undefined => {
  const e = err as { code?: unknown; statusCode?: unknown };
  return typeof e?.statusCode === 'number'
    ? e.statusCode
    : typeof e?.code === 'number'
      ? e.code
      : undefined;
};

export type ReflectorState = 'idle' | 'listing' | 'watching' | 'backoff' | 'stopped';

export class Reflector {
  state: ReflectorState = 'idle';
  lists = 0;
  watches = 0;
  private rv = '';
  private gen = 0;
  private controller?: AbortController;
  private retryTimer?: TimerHandle;
  private staleTimer?: TimerHandle;
  private relistTimer?: TimerHandle;
  private readonly backoff: Backoff;
  private readonly clock: Clock;

  constructor(
    private readonly spec: KindSpec,
    private readonly watcher: Watch,
    private readonly emit: (ev: SourceEvent) => void,
    private readonly o: KubeSourceOptions,
  ) {
    this.clock = o.clock ?? realClock;
    this.backoff = new Backoff({
      initialMs: o.backoffInitialMs ?? 800,
      maxMs: o.backoffMaxMs ?? 30_000,
      jitter: 0.5,
      random: o.random,
    });
  }

  start(): void {
    this.state = 'idle';
    this.scheduleRelist();
    void this.relist();
  }

  stop(): void {
    this.state = 'stopped';
    this.gen++;
    this.controller?.abort();
    for (const t of [this.retryTimer, this.staleTimer, this.relistTimer]) t?.cancel();
  }

  private get kind(): Kind {
    return this.spec.kind;
  }

  private async relist(): Promise<void> {
    if (this.state === 'stopped') return;
    const gen = ++this.gen;
    this.controller?.abort();
    this.staleTimer?.cancel();
    this.state = 'listing';
    this.lists++;
    let res: ListResult;
    try {
      res = await this.listAll();
    } catch (err) {
      if (gen === this.gen) this.fail(err, 'list', true);
      return;
    }
    if (gen !== this.gen || (this.state as ReflectorState) === 'stopped') return;
    this.rv = res.resourceVersion;
    this.emit({ type: 'snapshot', kinds: [this.kind], objects: res.items });
    this.o.log?.debug({ kind: this.kind, objects: res.items.length, rv: this.rv }, 'listed');
    await this.watch();
  }

  private async listAll(): Promise<ListResult> {
    const items: RawObject[] = [];
    let token: string | undefined;
    let rv = '';
    do {
      const page = await this.spec.list(token, this.o.pageSize ?? 500);
      for (const it of page.items ?? []) items.push(plain(it, this.kind, this.spec.apiVersion));
      rv = page.metadata?.resourceVersion ?? rv;
      token = page.metadata?._continue || undefined;
    } while (token);
    return { items, resourceVersion: rv };
  }

  private async watch(): Promise<void> {
    if (this.state === 'stopped') return;
    const gen = ++this.gen;
    this.state = 'watching';
    this.watches++;
    const openedAt = this.clock.now();
    this.touch(gen);
    const timeout =
      this.o.watchTimeoutSeconds ?? Math.round(300 + 300 * (this.o.random ?? Math.random)());
    try {
      const controller = await this.watcher.watch(
        this.spec.watchPath,
        {
          resourceVersion: this.rv,
          allowWatchBookmarks: true,
          timeoutSeconds: timeout,
          fieldSelector: this.spec.fieldSelector,
        },
        (phase: string, obj: unknown) => this.onWatchEvent(gen, phase, obj),
        (err: unknown) => this.onWatchEnd(gen, err, openedAt),
      );
      if (gen === this.gen) this.controller = controller;
      else controller.abort();
    } catch (err) {
      if (gen === this.gen) this.fail(err, 'watch', false);
    }
  }

  private onWatchEvent(gen: number, phase: string, obj: unknown): void {
    if (gen !== this.gen) return;
    this.touch(gen);
    const o = (typeof obj === 'object' && obj !== null ? obj : {}) as RawObject;
    const meta = (
      typeof o.metadata === 'object' && o.metadata !== null ? o.metadata : {}
    ) as Record<string, unknown>;
    if (phase === 'ERROR') {
      const code = typeof o.code === 'number' ? o.code : undefined;
      if (code === 410) {
        this.o.log?.info({ kind: this.kind }, 'watch history expired (410 Gone): relisting');
        void this.relist();
      } else
        this.fail(
          new Error(`watch error: ${String(o.message ?? JSON.stringify(o).slice(0, 200))}`),
          'watch',
          false,
        );
      return;
    }
    if (typeof meta.resourceVersion === 'string') this.rv = meta.resourceVersion;
    if (phase === 'BOOKMARK') return;
    const type =
      phase === 'ADDED'
        ? 'add'
        : phase === 'MODIFIED'
          ? 'update'
          : phase === 'DELETED'
            ? 'delete'
            : undefined;
    if (!type) return;
    // a successful event proves the connection works: forget earlier failures
    this.backoff.reset();
    this.emit({ type, object: { ...o, kind: this.kind, apiVersion: this.spec.apiVersion } });
  }

  private onWatchEnd(gen: number, err: unknown, openedAt: number): void {
    if (gen !== this.gen || this.state === 'stopped') return;
    this.staleTimer?.cancel();
    if (statusCode(err) === 410) {
      void this.relist();
      return;
    }
    if (!err && this.clock.now() - openedAt >= 1000) {
      // the server's timeoutSeconds ran out: an ordinary end, resume at once
      void this.watch();
      return;
    }
    this.fail(err ?? new Error('watch closed at once'), 'watch', false);
  }

  /** Any sign of life restarts the staleness timer. */
  private touch(gen: number): void {
    this.staleTimer?.cancel();
    this.staleTimer = this.clock.setTimer(this.o.staleMs ?? 300_000, () => {
      if (gen !== this.gen || this.state !== 'watching') return;
      this.o.log?.warn({ kind: this.kind }, 'watch silent past the staleness limit: restarting it');
      this.gen++;
      this.controller?.abort();
      void this.watch();
    });
  }

  private fail(err: unknown, what: 'list' | 'watch', relist: boolean): void {
    if (this.state === 'stopped') return;
    this.gen++;
    this.controller?.abort();
    this.staleTimer?.cancel();
    this.state = 'backoff';
    const delay = this.backoff.next();
    this.o.log?.warn(
      {
        kind: this.kind,
        what,
        err: err instanceof Error ? err.message : String(err),
        retryInMs: delay,
      },
      'list/watch failed',
    );
    this.retryTimer?.cancel();
    this.retryTimer = this.clock.setTimer(delay, () => {
      if (this.state !== 'backoff') return;
      if (relist || !this.rv) void this.relist();
      else void this.watch();
    });
  }

  private scheduleRelist(): void {
    this.relistTimer = this.clock.setTimer(this.o.relistMs ?? 15 * 60_000, () => {
      if (this.state === 'stopped') return;
      // while backing off the retry will list anyway
      if (this.state === 'watching') void this.relist();
      this.scheduleRelist();
    });
  }
}

export class KubeSource implements ClusterSource {
  readonly name = 'kubernetes';
  readonly reflectors: Reflector[] = [];

  constructor(private readonly o: KubeSourceOptions) {}

  async start(onChange: (ev: SourceEvent) => void): Promise<void> {
    const kc = this.o.kc ?? loadKubeConfig(this.o.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const podSelector = `spec.nodeName=${this.o.nodeName}`;
    const specs: KindSpec[] = [
      {
        kind: 'Service',
        apiVersion: 'v1',
        watchPath: '/api/v1/services',
        list: (c, limit) => core.listServiceForAllNamespaces({ _continue: c, limit }),
      },
      {
        kind: 'EndpointSlice',
        apiVersion: 'discovery.k8s.io/v1',
        watchPath: '/apis/discovery.k8s.io/v1/endpointslices',
        list: (c, limit) => discovery.listEndpointSliceForAllNamespaces({ _continue: c, limit }),
      },
      {
        kind: 'Node',
        apiVersion: 'v1',
        watchPath: '/api/v1/nodes',
        list: (c, limit) => core.listNode({ _continue: c, limit }),
      },
      {
        kind: 'Pod',
        apiVersion: 'v1',
        watchPath: '/api/v1/pods',
        fieldSelector: podSelector,
        list: (c, limit) =>
          core.listPodForAllNamespaces({ _continue: c, limit, fieldSelector: podSelector }),
      },
    ];
    const watcher = new Watch(kc);
    for (const s of specs) this.reflectors.push(new Reflector(s, watcher, onChange, this.o));
    for (const r of this.reflectors) r.start();
  }

  async stop(): Promise<void> {
    for (const r of this.reflectors) r.stop();
  }
}
