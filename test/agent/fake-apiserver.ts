// FakeApiServer: a small list/watch HTTP server for the Kubernetes source tests. It speaks just
// enough of the API for the real @kubernetes/client-node: paginated-free lists with a
// resourceVersion, watches that replay history after a resourceVersion and then stream, ERROR
// events with 410 when the history was compacted, and hooks to drop or silence watches.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Obj = Record<string, unknown>;

interface Resource {
  kind: string;
  apiVersion: string;
  items: Map<string, Obj>;
}

interface Event {
  rv: number;
  path: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

interface Watcher {
  path: string;
  selector?: string;
  res: ServerResponse;
  muted: boolean;
}

const RESOURCES: Record<string, { kind: string; apiVersion: string }> = {
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
  },
  '/api/v1/nodes': { kind: 'Node', apiVersion: 'v1' },
  '/api/v1/pods': { kind: 'Pod', apiVersion: 'v1' },
};

const pathOf = (kind: string) => Object.keys(RESOURCES).find((p) => RESOURCES[p].kind === kind)!;
const keyOf = (o: Obj) => {
  const m = o.metadata as { namespace?: string; name: string };
  return `${m.namespace ?? ''}/${m.name}`;
};

export class FakeApiServer {
  private server?: Server;
  private rv = 100;
  private compactedBelow = 0;
  private readonly resources = new Map<string, Resource>();
  private readonly history: Event[] = [];
  private watchers: Watcher[] = [];
  /** requests seen, e.g. "list /api/v1/pods?fieldSelector=…", "watch /api/v1/services rv=…" */
  readonly requests: string[] = [];
  /** when set, the next list of this path fails with HTTP 500 */
  failNextList?: string;

  constructor() {
    for (const [p, r] of Object.entries(RESOURCES))
      this.resources.set(p, { ...r, items: new Map() });
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.dropWatches();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  count(prefix: string): number {
    return this.requests.filter((r) => r.startsWith(prefix)).length;
  }

  openWatches(path?: string): number {
    return this.watchers.filter((w) => !w.res.writableEnded && (!path || w.path === path)).length;
  }

  /** Seed objects without events (before the first list). */
  seed(objects: Obj[]): void {
    for (const o of objects)
      this.resources.get(pathOf(String(o.kind)))!.items.set(keyOf(o), this.stamp(o));
  }

  add(o: Obj): void {
    this.change('ADDED', o);
  }
  update(o: Obj): void {
    this.change('MODIFIED', o);
  }
  remove(o: Obj): void {
    this.change('DELETED', o);
  }

  /** Forget history up to now: a watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv + 1;
    this.history.length = 0;
  }

  /** Send an in-stream 410 ERROR to every open watch (what an apiserver does after compaction). */
  expireWatches(): void {
    this.compact();
    for (const w of this.watchers) {
      if (w.res.writableEnded) continue;
      w.res.write(
        JSON.stringify({
          type: 'ERROR',
          object: {
            kind: 'Status',
            apiVersion: 'v1',
            status: 'Failure',
            reason: 'Expired',
            code: 410,
            message: 'too old resource version',
          },
        }) + '\n',
      );
      w.res.end();
    }
    this.watchers = [];
  }

  /** Cut every watch connection mid-stream. */
  dropWatches(): void {
    for (const w of this.watchers) w.res.socket?.destroy();
    this.watchers = [];
  }

  /** Keep connections open but deliver nothing more on them (a silently dead watch). */
  muteWatches(): void {
    for (const w of this.watchers) w.muted = true;
  }

  private stamp(o: Obj): Obj {
    const c = structuredClone(o);
    c.metadata = { ...(c.metadata as Obj), resourceVersion: String(++this.rv) };
    return c;
  }

  private change(type: Event['type'], o: Obj): void {
    const path = pathOf(String(o.kind));
    const r = this.resources.get(path)!;
    const object = this.stamp(o);
    if (type === 'DELETED') r.items.delete(keyOf(object));
    else r.items.set(keyOf(object), object);
    const ev: Event = { rv: this.rv, path, type, object };
    this.history.push(ev);
    for (const w of this.watchers)
      if (w.path === path && !w.muted && matches(object, w.selector)) send(w.res, ev);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const r = this.resources.get(url.pathname);
    if (!r) {
      res.writeHead(404).end();
      return;
    }
    const selector = url.searchParams.get('fieldSelector') ?? undefined;
    if (url.searchParams.get('watch') === 'true') {
      const from = Number(url.searchParams.get('resourceVersion') || '0');
      this.requests.push(`watch ${url.pathname} rv=${from}${selector ? ` ${selector}` : ''}`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (from < this.compactedBelow - 1) {
        res.end(
          JSON.stringify({
            type: 'ERROR',
            object: {
              kind: 'Status',
              code: 410,
              reason: 'Expired',
              message: 'too old resource version',
            },
          }) + '\n',
        );
        return;
      }
      const w: Watcher = { path: url.pathname, selector, res, muted: false };
      this.watchers.push(w);
      for (const ev of this.history)
        if (ev.path === url.pathname && ev.rv > from && matches(ev.object, selector)) send(res, ev);
      res.flushHeaders();
      return;
    }
    this.requests.push(`list ${url.pathname}${selector ? ` ${selector}` : ''}`);
    if (this.failNextList === url.pathname) {
      this.failNextList = undefined;
      res
        .writeHead(500, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ kind: 'Status', code: 500 }));
      return;
    }
    const items = [...r.items.values()].filter((o) => matches(o, selector));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: `${r.kind}List`,
        apiVersion: r.apiVersion,
        metadata: { resourceVersion: String(this.rv) },
        items,
      }),
    );
  }
}

function send(res: ServerResponse, ev: Event): void {
  if (!res.writableEnded) res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n');
}

/** Only `spec.nodeName=X` is supported, as the agent uses it. */
function matches(o: Obj, selector?: string): boolean {
  if (!selector) return true;
  const m = /^spec\.nodeName=(.*)$/.exec(selector);
  if (!m) return true;
  return ((o.spec as Obj | undefined)?.nodeName ?? '') === m[1];
}
