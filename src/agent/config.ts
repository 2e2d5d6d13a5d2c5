// The agent's configuration file: one YAML document (kind SvcflowAgentConfig) with the agent's
// own settings and, under `dataplane`, the svcflow data-plane settings of docs/config.md.
// Command-line flags override the file.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse } from 'yaml';

import { InputError } from '../cluster/load.js';
import { parseConfig } from '../config/config.js';
import type { SvcflowConfig } from '../config/types.js';

export const AGENT_CONFIG_KIND = 'SvcflowAgentConfig';

export interface AgentSettings {
  nodeName: string;
  /** Kubernetes API (default) unless a manifest path is given */
  kubeconfig?: string;
  manifest?: string;
  /** ovs-ofctl switch argument (bridge name or unix:/…/br-int.mgmt); default: the bridge */
  ofctlTarget?: string;
  /** ovs-vsctl argv prefix for reading local pods; [] turns OVSDB pods off */
  vsctl: string[];
  metricsAddress: string;
  healthCheckBindAddress: string;
  host: 'linux' | 'windows' | 'none';
  minSyncIntervalMs: number;
  maxSyncIntervalMs: number;
  logLevel: string;
  dataplane: SvcflowConfig;
}

export interface AgentFlags {
  config?: string;
  kubeconfig?: string;
  manifest?: string;
  node?: string;
  bridge?: string;
  ofctlTarget?: string;
  metricsAddress?: string;
  host?: string;
  logLevel?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const KNOWN = new Set([
  'apiVersion',
  'kind',
  'metadata',
  'nodeName',
  'kubeconfig',
  'manifest',
  'ofctlTarget',
  'vsctl',
  'metricsAddress',
  'healthCheckBindAddress',
  'host',
  'minSyncIntervalMs',
  'maxSyncIntervalMs',
  'logLevel',
  'dataplane',
]);

function bad(field: string, reason: string): never {
  throw new InputError(`agent config: ${field} ${reason}`);
}

function str(d: Obj, k: string): string | undefined {
  const v = d[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') bad(k, 'must be a non-empty string');
  return v;
}

function ms(d: Obj, k: string, def: number): number {
  const v = d[k];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 86_400_000)
    bad(k, 'must be milliseconds (0 to one day)');
  return v;
}

export function parseAgentSettings(
  doc: unknown,
  flags: AgentFlags = {},
  env: NodeJS.ProcessEnv = process.env,
): AgentSettings {
  const d: Obj =
    doc === undefined || doc === null
      ? {}
      : isObj(doc)
        ? doc
        : bad('document', 'must be a mapping');
  if (d.kind !== undefined && d.kind !== AGENT_CONFIG_KIND)
    bad('kind', `must be ${AGENT_CONFIG_KIND}`);
  for (const k of Object.keys(d)) if (!KNOWN.has(k)) bad(k, 'is not a known setting');
  if (d.dataplane !== undefined && !isObj(d.dataplane)) bad('dataplane', 'must be a mapping');
  const dataplaneDoc: Obj = { ...((d.dataplane as Obj | undefined) ?? {}) };
  if (flags.bridge) dataplaneDoc.bridge = flags.bridge;
  const dataplane = parseConfig([dataplaneDoc]);
  const host = (flags.host ??
    str(d, 'host') ??
    (process.platform === 'win32' ? 'windows' : 'linux')) as AgentSettings['host'];
  if (!['linux', 'windows', 'none'].includes(host)) bad('host', 'must be linux, windows or none');
  let vsctl = ['ovs-vsctl'];
  if (d.vsctl !== undefined) {
    if (!Array.isArray(d.vsctl) || !d.vsctl.every((x) => typeof x === 'string'))
      bad('vsctl', 'must be a list of strings');
    vsctl = d.vsctl as string[];
  }
  const s: AgentSettings = {
    nodeName: flags.node ?? str(d, 'nodeName') ?? env.NODE_NAME ?? hostname(),
    kubeconfig: flags.kubeconfig ?? str(d, 'kubeconfig'),
    manifest: flags.manifest ?? str(d, 'manifest'),
    ofctlTarget: flags.ofctlTarget ?? str(d, 'ofctlTarget'),
    vsctl,
    metricsAddress: flags.metricsAddress ?? str(d, 'metricsAddress') ?? '127.0.0.1:10256',
    healthCheckBindAddress: str(d, 'healthCheckBindAddress') ?? '0.0.0.0',
    host,
    minSyncIntervalMs: ms(d, 'minSyncIntervalMs', 1000),
    maxSyncIntervalMs: ms(d, 'maxSyncIntervalMs', 60_000),
    logLevel: flags.logLevel ?? str(d, 'logLevel') ?? 'info',
    dataplane,
  };
  if (s.maxSyncIntervalMs < s.minSyncIntervalMs)
    bad('maxSyncIntervalMs', 'must not be below minSyncIntervalMs');
  if (s.kubeconfig && s.manifest)
    bad('manifest', 'and kubeconfig are two different sources: give one');
  return s;
}

export function loadAgentSettings(flags: AgentFlags): AgentSettings {
  let doc: unknown;
  if (flags.config) {
    let text: string;
    try {
      text = readFileSync(flags.config, 'utf8');
    } catch (err) {
      throw new InputError(
        `cannot read ${flags.config}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    try {
      doc = parse(text);
    } catch (err) {
      throw new InputError(
        `${flags.config}: not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      );
    }
  }
  return parseAgentSettings(doc, flags);
}
