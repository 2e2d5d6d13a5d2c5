// Local pods as the bridge knows them: OVSDB Interface rows that carry the svcflow pod keys in
// external_ids (the contract in docs/config.md). At run time these replace the offline
// derivation of pod ofports and MACs.

import { isIPv4, isMAC } from '../net/ipv4.js';
import { run } from '../lab/exec.js';
import type { LocalPod } from '../config/types.js';

export interface VsctlTarget {
  /** argv prefix, e.g. ['ovs-vsctl'] or ['ovs-vsctl', '--db=unix:/run/x/db.sock'] */
  command?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
}

export const LIST_INTERFACES = [
  '--format=json',
  '--columns=name,ofport,external_ids',
  'list',
  'Interface',
];

export interface PodRowProblem {
  iface: string;
  reason: string;
}

type Json = unknown;

/** OVSDB's JSON encoding of a map column: ["map", [[k, v], …]]. */
function ovsMap(v: Json): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(v) || v[0] !== 'map' || !Array.isArray(v[1])) return out;
  for (const pair of v[1] as Json[])
    if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string')
      out[pair[0]] = pair[1];
  return out;
}

/** An integer column; an unset optional column is ["set", []]. */
function ovsInt(v: Json): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
}

/**
 * Parse `ovs-vsctl --format=json list Interface` output. Rows without the pod keys are not pods
 * and are skipped silently; rows with the keys but bad values are reported and skipped.
 */
export function parseInterfaces(text: string): { pods: LocalPod[]; problems: PodRowProblem[] } {
  const problems: PodRowProblem[] = [];
  let doc: Json;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error('ovs-vsctl list Interface: output is not JSON');
  }
  const d = doc as { headings?: Json; data?: Json };
  if (!Array.isArray(d.headings) || !Array.isArray(d.data))
    throw new Error('ovs-vsctl list Interface: no headings/data');
  const col = (name: string) => (d.headings as Json[]).indexOf(name);
  const [iName, iPort, iIds] = [col('name'), col('ofport'), col('external_ids')];
  if (iName < 0 || iPort < 0 || iIds < 0)
    throw new Error('ovs-vsctl list Interface: missing columns');
  const pods: LocalPod[] = [];
  for (const row of d.data as Json[]) {
    if (!Array.isArray(row)) continue;
    const iface = typeof row[iName] === 'string' ? (row[iName] as string) : '?';
    const ids = ovsMap(row[iIds]);
    const namespace = ids['svcflow-pod-namespace'];
    const name = ids['svcflow-pod-name'];
    if (namespace === undefined && name === undefined) continue;
    const ip = ids['svcflow-pod-ip'];
    const mac = ids['svcflow-pod-mac']?.toLowerCase();
    const ofport = ovsInt(row[iPort]);
    const bad = (reason: string) => problems.push({ iface, reason });
    if (!namespace || !name) bad('svcflow-pod-namespace and svcflow-pod-name must both be set');
    else if (!isIPv4(ip)) bad(`svcflow-pod-ip ${JSON.stringify(ip)} is not an IPv4 address`);
    else if (!isMAC(mac)) bad(`svcflow-pod-mac ${JSON.stringify(mac)} is not a MAC address`);
    else if (ofport === undefined || ofport < 1 || ofport > 0xfeff)
      bad(`no usable ofport (${JSON.stringify(row[iPort])})`);
    else pods.push({ namespace, name, ip, mac, ofport });
  }
  pods.sort((a, b) => {
    const x = `${a.namespace}/${a.name}/${a.ip}`;
    const y = `${b.namespace}/${b.name}/${b.ip}`;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return { pods, problems };
}

export async function readLocalPods(
  t: VsctlTarget = {},
): Promise<{ pods: LocalPod[]; problems: PodRowProblem[] }> {
  const r = await run([...(t.command ?? ['ovs-vsctl']), ...LIST_INTERFACES], {
    env: t.env,
    timeoutMs: t.timeoutMs ?? 15_000,
  });
  return parseInterfaces(r.stdout);
}
