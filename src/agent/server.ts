// The agent's own HTTP endpoint: /metrics (Prometheus text) and /healthz (kube-proxy's shape:
// 200 while syncs keep up, 503 when changes have waited too long or nothing synced yet).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { AgentMetrics } from './metrics.js';

export interface HealthSource {
  health(): { healthy: boolean; lastUpdated?: number; now: number };
}

export async function startAgentServer(
  address: string,
  metrics: AgentMetrics,
  health: HealthSource,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const { host, port } = splitHostPort(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(text);
        },
        () => res.writeHead(500).end(),
      );
      return;
    }
    if (path === '/healthz' || path === '/livez') {
      const h = health.health();
      const iso = (t?: number) => (t === undefined ? '' : new Date(t).toISOString());
      res.writeHead(h.healthy ? 200 : 503, {
        'Content-Type': 'application/json',
        'X-Content-Type-Options': 'nosniff',
      });
      res.end(JSON.stringify({ lastUpdated: iso(h.lastUpdated), currentTime: iso(h.now) }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** "127.0.0.1:10256" → host and port; a bare port binds to 127.0.0.1. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? '127.0.0.1' : address.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(i < 0 ? address : address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`bad address ${JSON.stringify(address)}`);
  return { host, port };
}
