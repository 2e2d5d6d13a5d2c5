// Bringing a bridge from what it has to what we want, in one atomic OpenFlow bundle. Flows are
// identified by table + priority + match (OpenFlow's own identity: an add with the same triple
// replaces the flow, cookie and actions included); groups by id. The bundle orders its parts so
// that every intermediate reference is valid: groups added or changed first (new flows point at
// them), then flows added or replaced, then stale flows deleted, then stale groups deleted
// (OVS deletes the flows that still point at a deleted group, so those must be gone already).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { run } from '../lab/exec.js';
import { canonicalFlow, parseFlow, parseGroup } from '../openflow/parse.js';
import { renderActions, renderFlow, renderGroup, renderMatch } from '../openflow/render.js';
import type { Flow, Group, OpenFlowProgram } from '../openflow/types.js';
import { decodeCookie } from '../pipeline/cookies.js';
import type { OfctlTarget } from './ofctl.js';

const PROTOCOL = 'OpenFlow15';

/** What the sync needs from ovs-ofctl; the real one runs the program, tests may fake it. */
export interface OfctlRunner {
  dumpFlows(): Promise<string>;
  dumpGroups(): Promise<string>;
  /** flow_count of `dump-aggregate`: a cheap check that the table still holds what we put there */
  flowCount(): Promise<number>;
  bundle(text: string): Promise<void>;
}

export function ofctlRunner(t: OfctlTarget): OfctlRunner {
  const ofctl = async (args: string[]) =>
    (
      await run([...(t.command ?? ['ovs-ofctl']), '-O', PROTOCOL, ...args], {
        env: t.env,
        timeoutMs: t.timeoutMs ?? 60_000,
      })
    ).stdout;
  return {
    dumpFlows: () => ofctl(['dump-flows', '--no-stats', t.switch]),
    dumpGroups: () => ofctl(['dump-groups', t.switch]),
    async flowCount() {
      const out = await ofctl(['dump-aggregate', t.switch]);
      const m = /flow_count=(\d+)/.exec(out);
      if (!m) throw new Error(`unexpected dump-aggregate output: ${out.trim().slice(0, 200)}`);
      return Number(m[1]);
    },
    async bundle(text) {
      const dir = await mkdtemp(join(tmpdir(), 'svcflow-sync-'));
      try {
        const file = join(dir, 'bundle.txt');
        await writeFile(file, text);
        await ofctl(['bundle', t.switch, file]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

// ---------- pure part ----------

/** table+priority+match: what makes two flows the same flow in OpenFlow's eyes. */
export function flowKey(f: Flow): string {
  const c = canonicalFlow(f);
  const match = renderMatch(c.match);
  return `table=${f.table},priority=${f.priority}${match ? ',' + match : ''}`;
}

/** What must match for an installed flow to need no change. */
function flowValue(f: Flow): string {
  return `cookie=${f.cookie.toString(16)} actions=${renderActions(canonicalFlow(f).actions)}`;
}

export interface InstalledState {
  /** flowKey → the installed flow */
  flows: Map<string, Flow>;
  groups: Map<number, Group>;
  /** dump lines we could not parse: left alone, reported */
  unparsed: string[];
}

export function emptyInstalled(): InstalledState {
  return { flows: new Map(), groups: new Map(), unparsed: [] };
}

const NOISE = /^(OFPST_|NXST_|OFPT_|OFPGC?_)\w+/;

export function parseInstalled(flowsText: string, groupsText: string): InstalledState {
  const st = emptyInstalled();
  for (const line of flowsText.split('\n')) {
    const t = line.trim();
    if (t === '' || NOISE.test(t)) continue;
    try {
      const f = parseFlow(t);
      st.flows.set(flowKey(f), f);
    } catch {
      st.unparsed.push(t);
    }
  }
  for (const line of groupsText.split('\n')) {
    const t = line.trim();
    if (t === '' || NOISE.test(t)) continue;
    try {
      const g = parseGroup(t);
      st.groups.set(g.id, g);
    } catch {
      st.unparsed.push(t);
    }
  }
  return st;
}

export interface BundlePlan {
  groupAdds: Group[];
  groupMods: Group[];
  /** new flows and flows whose cookie or actions differ (an add replaces them) */
  flowAdds: Flow[];
  flowDeletes: Flow[];
  groupDeletes: number[];
}

export function planBundle(desired: OpenFlowProgram, installed: InstalledState): BundlePlan {
  const plan: BundlePlan = {
    groupAdds: [],
    groupMods: [],
    flowAdds: [],
    flowDeletes: [],
    groupDeletes: [],
  };
  const wantGroups = new Map(desired.groups.map((g) => [g.id, g]));
  for (const g of desired.groups) {
    const have = installed.groups.get(g.id);
    if (!have) plan.groupAdds.push(g);
    else if (renderGroup(have) !== renderGroup(g)) plan.groupMods.push(g);
  }
  const wantFlows = new Set<string>();
  for (const f of desired.flows) {
    const k = flowKey(f);
    wantFlows.add(k);
    const have = installed.flows.get(k);
    if (!have || flowValue(have) !== flowValue(f)) plan.flowAdds.push(f);
  }
  for (const [k, f] of installed.flows) if (!wantFlows.has(k)) plan.flowDeletes.push(f);
  for (const id of installed.groups.keys()) if (!wantGroups.has(id)) plan.groupDeletes.push(id);
  return plan;
}

export function bundleSize(p: BundlePlan): number {
  return (
    p.groupAdds.length +
    p.groupMods.length +
    p.flowAdds.length +
    p.flowDeletes.length +
    p.groupDeletes.length
  );
}

/** The bundle file, in the order the header comment explains. */
export function bundleText(p: BundlePlan): string {
  const out: string[] = [];
  for (const g of p.groupAdds) out.push(`group add ${renderGroup(g)}`);
  for (const g of p.groupMods) out.push(`group modify ${renderGroup(g)}`);
  for (const f of p.flowAdds) out.push(`flow add ${renderFlow(f)}`);
  for (const f of p.flowDeletes) {
    const match = renderMatch(f.match);
    out.push(
      `flow delete_strict table=${f.table},priority=${f.priority}${match ? ',' + match : ''}`,
    );
  }
  for (const id of p.groupDeletes) out.push(`group delete group_id=${id}`);
  return out.length ? out.join('\n') + '\n' : '';
}

/** The next cookie round after the ones found installed (16 bits, never 0). */
export function nextRound(installed: InstalledState): number {
  let max = 0;
  for (const f of installed.flows.values()) max = Math.max(max, decodeCookie(f.cookie).round);
  return (max % 0xffff) + 1;
}

// ---------- the stateful part ----------

export interface SyncResult {
  plan: BundlePlan;
  /** the installed state was re-read from the switch (first sync, verify, drift) */
  reread: boolean;
  /** the switch had lost our flows (ovs-vswitchd restarted or someone flushed it) */
  replayed: boolean;
  flows: number;
  groups: number;
}

export class OvsSync {
  /** What we believe is installed; undefined = unknown, read it before the next diff. */
  private installed?: InstalledState;

  constructor(private readonly ofctl: OfctlRunner) {}

  async readInstalled(): Promise<InstalledState> {
    const [flows, groups] = [await this.ofctl.dumpFlows(), await this.ofctl.dumpGroups()];
    return parseInstalled(flows, groups);
  }

  /** Round for a fresh agent: one past whatever an earlier run left on the bridge. */
  async pickRound(): Promise<number> {
    this.installed = await this.readInstalled();
    return nextRound(this.installed);
  }

  /** What we had installed before the switch was lost, to tell a replay on the re-read. */
  private lost?: InstalledState;

  /**
   * Forget the cached view: the next sync re-reads the switch. `lost`: the switch itself went
   * away (ovs-vswitchd restarted), so the re-read is compared with what we had installed.
   */
  invalidate(lost = false): void {
    if (lost && this.installed) this.lost = this.installed;
    this.installed = undefined;
  }

  /**
   * `verify`: re-read the switch first. `trusted`: the caller knows the switch is the one we
   * installed into (a standing connection never dropped), so the flow count check is skipped.
   */
  async sync(
    desired: OpenFlowProgram,
    opts: { verify?: boolean; trusted?: boolean } = {},
  ): Promise<SyncResult> {
    let reread = false;
    let replayed = false;
    if (this.installed && !opts.verify && !opts.trusted) {
      // cheap drift check: a restarted ovs-vswitchd comes back with an empty table
      const count = await this.ofctl.flowCount();
      if (count !== this.installed.flows.size + this.installed.unparsed.filter(isFlowLine).length) {
        replayed = count < this.installed.flows.size;
        this.installed = undefined;
      }
    }
    if (!this.installed || opts.verify) {
      const before = this.installed ?? this.lost;
      this.installed = await this.readInstalled();
      reread = true;
      if (before && before.flows.size > 0 && this.installed.flows.size < before.flows.size)
        replayed = true;
      this.lost = undefined;
    }
    const plan = planBundle(desired, this.installed);
    if (bundleSize(plan) > 0) {
      try {
        await this.ofctl.bundle(bundleText(plan));
      } catch (err) {
        // the bundle is atomic, so the switch kept its old state; read it again next time
        this.installed = undefined;
        throw err;
      }
    }
    const next = emptyInstalled();
    for (const f of desired.flows) next.flows.set(flowKey(f), f);
    for (const g of desired.groups) next.groups.set(g.id, g);
    next.unparsed = this.installed.unparsed;
    this.installed = next;
    return { plan, reread, replayed, flows: desired.flows.length, groups: desired.groups.length };
  }
}

const isFlowLine = (l: string) => /(^|[\s,])actions=/.test(l) && !l.startsWith('group_id=');
