// One HTTP health-check server per Service with externalTrafficPolicy Local and a
// healthCheckNodePort: load balancers probe it to learn whether this node has local endpoints.
// The answer follows kube-proxy's: 200 with local endpoints, 503 without, and a JSON body.

import { createServer, type Server } from 'node:http';

export interface HealthCheckService {
  namespace: string;
  name: string;
  port: number;
  localEndpoints: number;
}

interface Entry {
  svc: HealthCheckService;
  server: Server;
}

export interface HealthCheckLog {
  warn(obj: object, msg: string): void;
}

export class HealthCheckServers {
  private readonly byPort = new Map<number, Entry>();

  constructor(
    private readonly bindAddress = '0.0.0.0',
    private readonly log?: HealthCheckLog,
  ) {}

  /** Make the set of servers match `services` (keyed by port); counts change in place. */
  async update(services: HealthCheckService[]): Promise<void> {
    const wanted = new Map<number, HealthCheckService>();
    for (const s of services) if (!wanted.has(s.port)) wanted.set(s.port, s);
    for (const [port, e] of [...this.byPort])
      if (
        !wanted.has(port) ||
        wanted.get(port)!.name !== e.svc.name ||
        wanted.get(port)!.namespace !== e.svc.namespace
      ) {
        this.byPort.delete(port);
        await close(e.server);
      }
    for (const [port, svc] of wanted) {
      const have = this.byPort.get(port);
      if (have) {
        have.svc = svc;
        continue;
      }
      const entry: Entry = { svc, server: createServer() };
      entry.server.on('request', (_req, res) => {
        const s = entry.svc;
        const body = JSON.stringify({
          service: { namespace: s.namespace, name: s.name },
          localEndpoints: s.localEndpoints,
          serviceProxyHealthy: true,
        });
        res.writeHead(s.localEndpoints > 0 ? 200 : 503, {
          'Content-Type': 'application/json',
          'X-Content-Type-Options': 'nosniff',
        });
        res.end(body);
      });
      try {
        await listen(entry.server, port, this.bindAddress);
        this.byPort.set(port, entry);
      } catch (err) {
        // a taken port must not stop the sync; the next sync tries again
        this.log?.warn(
          { port, service: `${svc.namespace}/${svc.name}`, err: String(err) },
          'health check port unavailable',
        );
      }
    }
  }

  ports(): number[] {
    return [...this.byPort.keys()].sort((a, b) => a - b);
  }

  async close(): Promise<void> {
    const all = [...this.byPort.values()];
    this.byPort.clear();
    await Promise.all(all.map((e) => close(e.server)));
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}
