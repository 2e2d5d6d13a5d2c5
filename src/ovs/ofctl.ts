// The OpenFlow edge: load a whole program (groups + flows, in ovs-ofctl text syntax) into a
// bridge as one atomic bundle, and read the tables back. Only ovs-ofctl is used; the target says
// how to reach the bridge, so the same code serves the lab and a real node.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { run } from '../lab/exec.js';

export interface OfctlTarget {
  /** How ovs-ofctl is invoked, e.g. ['ovs-ofctl'] or ['ip', 'netns', 'exec', NS, 'ovs-ofctl']. */
  command?: string[];
  /** The switch argument: a bridge name or `unix:/path/br-int.mgmt`. */
  switch: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface ApplyStats {
  groups: number;
  flows: number;
}

export interface OpenFlowBackend {
  applyProgram(groupsText: string, flowsText: string): Promise<ApplyStats>;
  dumpFlows(): Promise<string>;
  dumpGroups(): Promise<string>;
}

const PROTOCOL = 'OpenFlow15';

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * The bundle file that replaces everything: drop all flows and groups, add the groups, then the
 * flows. Groups go first because a flow naming a missing group is rejected
 * (OFPBAC_BAD_OUT_GROUP); deleting the old ones inside the same bundle means no packet ever
 * meets a half-old, half-new table.
 */
export function bundleText(groupsText: string, flowsText: string): string {
  const out = ['flow delete', 'group delete group_id=all'];
  for (const g of lines(groupsText)) out.push(`group add ${g}`);
  for (const f of lines(flowsText)) out.push(`flow add ${f}`);
  return out.join('\n') + '\n';
}

function ofctl(t: OfctlTarget, args: string[], timeoutMs?: number) {
  return run([...(t.command ?? ['ovs-ofctl']), '-O', PROTOCOL, ...args], {
    env: t.env,
    timeoutMs: timeoutMs ?? t.timeoutMs ?? 60_000,
  });
}

/** Replace every group and flow on the bridge atomically with the given program. */
export async function applyProgram(
  t: OfctlTarget,
  groupsText: string,
  flowsText: string,
): Promise<ApplyStats> {
  const dir = await mkdtemp(join(tmpdir(), 'svcflow-of-'));
  try {
    const file = join(dir, 'bundle.txt');
    await writeFile(file, bundleText(groupsText, flowsText));
    await ofctl(t, ['bundle', t.switch, file]);
    return { groups: lines(groupsText).length, flows: lines(flowsText).length };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface DumpOptions {
  /** leave out counters and durations so two dumps compare equal (default true) */
  noStats?: boolean;
  table?: number;
}

/** `ovs-ofctl dump-flows`, raw text (with --no-stats by default). */
export async function dumpFlows(t: OfctlTarget, opts: DumpOptions = {}): Promise<string> {
  const args = ['dump-flows'];
  if (opts.noStats ?? true) args.push('--no-stats');
  args.push(t.switch);
  if (opts.table !== undefined) args.push(`table=${opts.table}`);
  return (await ofctl(t, args)).stdout;
}

/** `ovs-ofctl dump-groups`, raw text. */
export async function dumpGroups(t: OfctlTarget): Promise<string> {
  return (await ofctl(t, ['dump-groups', t.switch])).stdout;
}

/** The three operations bound to one bridge, for callers that hold a backend object. */
export function ofctlBackend(t: OfctlTarget): OpenFlowBackend {
  return {
    applyProgram: (g, f) => applyProgram(t, g, f),
    dumpFlows: () => dumpFlows(t),
    dumpGroups: () => dumpGroups(t),
  };
}
