import { createServer } from 'node:net';
// Shared by the agent tests: the bundled example as raw objects, small mutations, and the
// reference program (compileNode of the same objects) as sets of rendered lines.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';

import { parseObjects } from '../../src/cluster/load.js';
import { validateObjects } from '../../src/cluster/validate.js';
import { EXAMPLE_CLUSTER, EXAMPLE_CONFIG } from '../../src/cli/context.js';
import { parseConfig } from '../../src/config/config.js';
import { resolveNode } from '../../src/config/resolve.js';
import type { NodeDataplane, SvcflowConfig } from '../../src/config/types.js';
import { canonicalFlow, parseFlows, parseGroups } from '../../src/openflow/parse.js';
import { renderFlow, renderGroup } from '../../src/openflow/render.js';
import type { OpenFlowProgram } from '../../src/openflow/types.js';
import { compileNode } from '../../src/pipeline/compile.js';
import type { RawObject } from '../../src/agent/source.js';

export function exampleObjects(): RawObject[] {
  return parseObjects(readFileSync(EXAMPLE_CLUSTER, 'utf8'), 'example');
}

export function exampleConfig(): SvcflowConfig {
  return parseConfig(parseObjects(readFileSync(EXAMPLE_CONFIG, 'utf8'), 'config'));
}

export function reference(
  objects: RawObject[],
  node: string,
  round: number,
  dpOverride?: (dp: NodeDataplane) => NodeDataplane,
) {
  const { state } = validateObjects(objects);
  let dp = resolveNode(state, exampleConfig(), node);
  if (dpOverride) dp = dpOverride(dp);
  return compileNode(state, dp, { round });
}

/** Flows and groups as sorted rendered text, in canonical form so dumps and values compare. */
export function textOf(p: OpenFlowProgram): { flows: string[]; groups: string[] } {
  return {
    flows: p.flows.map((f) => renderFlow(canonicalFlow(f))).sort(),
    groups: p.groups.map(renderGroup).sort(),
  };
}

export function textOfDump(flowsDump: string, groupsDump: string) {
  return textOf({ flows: parseFlows(flowsDump), groups: parseGroups(groupsDump) });
}

export function service(
  name: string,
  ip: string,
  port: number,
  extra: Record<string, unknown> = {},
): RawObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: {
      type: 'ClusterIP',
      clusterIP: ip,
      clusterIPs: [ip],
      ports: [{ name: 'http', protocol: 'TCP', port, targetPort: 8080 }],
      ...extra,
    },
  };
}

export function slice(
  name: string,
  svc: string,
  eps: { ip: string; node: string; ready?: boolean }[],
  port = 8080,
): RawObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
    ports: [{ name: 'http', protocol: 'TCP', port }],
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: true, terminating: false },
      nodeName: e.node,
    })),
  };
}

export const byName = (objects: RawObject[], kind: string, name: string): RawObject => {
  const o = objects.find((x) => x.kind === kind && (x.metadata as { name: string }).name === name);
  if (!o) throw new Error(`no ${kind} ${name} in the example`);
  return structuredClone(o);
};

/** A pino logger that keeps every line as an object. */
export function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
