// Bringing a bridge from what it has to what we want, in one atomic OpenFlow bundle. Flows are
// identified by table + priority + match (OpenFlow's own identity: an add with the same triple
// replaces the flow, cookie and actions included); groups by id. The bundle orders its parts so
// that every intermediate reference is valid: groups added or changed first (new flows point at
// them), then flows added or replaced, then stale flows deleted, then stale groups deleted
// (OVS deletes the flows that still point at a deleted group, so those must be gone already).

import { spawn } from 'node:child_process';

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
  /**
   * The same bundle, rendered while ovs-ofctl already parses it (stdin): for a big install the
   * rendering then hides behind ovs-ofctl's own work instead of adding to it.
   */
  bundleLines?(lines: Iterable<string>): Promise<void>;
  /**
   * Load a whole program into an empty switch: `--bundle add-groups` then `--bundle add-flows`,
   * streamed. Cheaper for ovs-ofctl than the ordered `bundle` command.
   */
  install?(groups: Iterable<string>, flows: Iterable<string>): Promise<void>;
}

/** Run `argv` with `lines` streamed to its stdin (backpressure respected); rejects on failure. */
function runStreaming(
  argv: string[],
  lines: Iterable<string>,
  opts: { env?: Record<string, string>; timeoutMs: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    let failed = false;
    const timer = setTimeout(() => {
      failed = true;
      child.kill('SIGKILL');
      reject(new Error(`${argv.join(' ')}: timed out after ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      failed = true;
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (failed) return;
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')}: exit code ${code}\n${stderr.trim()}`));
    });
    child.stdin.on('error', () => {});
    const it = lines[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        let chunk = '';
        for (let n = 0; n < 512; n++) {
          const r = it.next();
          if (r.done) {
            child.stdin.end(chunk);
            return;
          }
          chunk += r.value + '\n';
        }
        if (!child.stdin.write(chunk)) {
          child.stdin.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

function* prepend(first: string, rest: Iterator<string>): Generator<string> {
  yield first;
  for (let r = rest.next(); !r.done; r = rest.next()) yield r.value;
}

export function ofctlRunner(t: OfctlTarget): OfctlRunner {
  const ofctl = async (args: string[]) =>
    (
      await run([...(t.command ?? ['ovs-ofctl']), '-O', PROTOCOL, ...args], {
        env: t.env,
        timeoutMs: t.timeoutMs ?? 60_000,
      })
    ).stdout;
  const argv = (...args: string[]) => [...(t.command ?? ['ovs-ofctl']), '-O', PROTOCOL, ...args];
  const streamOpts = { env: t.env, timeoutMs: t.timeoutMs ?? 60_000 };
  return {
    dumpFlows: () => ofctl(['dump-flows', '--no-stats', t.switch]),
    dumpGroups: () => ofctl(['dump-groups', t.switch]),
    async flowCount() {
      const out = await ofctl(['dump-aggregate', t.switch]);
      const m = /flow_count=(\d+)/.exec(out);
      if (!m) throw new Error(`unexpected dump-aggregate output: ${out.trim().slice(0, 200)}`);
      return Number(m[1]);
    },
    // stdin rather than a temporary file: no file system round trips on the per-change path
    bundle: (text) => runStreaming(argv('bundle', t.switch, '-'), [text.trimEnd()], streamOpts),
    bundleLines: (lines) => runStreaming(argv('bundle', t.switch, '-'), lines, streamOpts),
    async install(groups, flows) {
      for (const [cmd, lines] of [
        ['add-groups', groups],
        ['add-flows', flows],
      ] as const) {
        const it = lines[Symbol.iterator]();
        const first = it.next();
        if (first.done) continue;
        await runStreaming(
          argv('--bundle', cmd, t.switch, '-'),
          prepend(first.value, it),
          streamOpts,
        );
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

// A wanted flow's text, rendered once: the desired program renders as it compiles, and every
// later bundle (a bulk install above all) only joins the strings.
const flowTexts = new WeakMap<Flow, string>();

export function flowText(f: Flow): string {
  let t = flowTexts.get(f);
  if (t === undefined) {
    t = renderFlow(f);
    flowTexts.set(f, t);
  }
  return t;
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

/**
 * The desired program keyed the way the switch is compared: flows by flowKey, groups by id. A
 * keeper of the program that knows what it changed since the last view passes `dirty`, and a
 * sync against a trusted cache then looks at those keys only.
 */
export interface DesiredView {
  flows: ReadonlyMap<string, Flow>;
  groups: ReadonlyMap<number, Group>;
  dirty?: { flows: ReadonlySet<string>; groups: ReadonlySet<number> };
}

export function viewOf(p: OpenFlowProgram): DesiredView {
  return {
    flows: new Map(p.flows.map((f) => [flowKey(f), f])),
    groups: new Map(p.groups.map((g) => [g.id, g])),
  };
}

const isView = (d: OpenFlowProgram | DesiredView): d is DesiredView => !Array.isArray(d.flows);

export interface BundlePlan {
  groupAdds: Group[];
  groupMods: Group[];
  /** new flows and flows whose cookie or actions differ (an add replaces them) */
  flowAdds: Flow[];
  flowDeletes: Flow[];
  groupDeletes: number[];
}

const emptyPlan = (): BundlePlan => ({
  groupAdds: [],
  groupMods: [],
  flowAdds: [],
  flowDeletes: [],
  groupDeletes: [],
});

function planFlow(plan: BundlePlan, want: Flow | undefined, have: Flow | undefined): void {
  if (want && (!have || flowValue(have) !== flowValue(want))) plan.flowAdds.push(want);
  else if (!want && have) plan.flowDeletes.push(have);
}

function planGroup(plan: BundlePlan, id: number, want?: Group, have?: Group): void {
  if (want && !have) plan.groupAdds.push(want);
  else if (want && have && renderGroup(have) !== renderGroup(want)) plan.groupMods.push(want);
  else if (!want && have) plan.groupDeletes.push(id);
}

/** Everything: every wanted key and every installed key. */
export function planBundle(
  desired: OpenFlowProgram | DesiredView,
  installed: InstalledState,
): BundlePlan {
  const want = isView(desired) ? desired : viewOf(desired);
  const plan = emptyPlan();
  for (const [id, g] of want.groups) planGroup(plan, id, g, installed.groups.get(id));
  for (const [k, f] of want.flows) planFlow(plan, f, installed.flows.get(k));
  for (const [k, f] of installed.flows) if (!want.flows.has(k)) plan.flowDeletes.push(f);
  for (const id of installed.groups.keys()) if (!want.groups.has(id)) plan.groupDeletes.push(id);
  return plan;
}

/** Only the keys the desired side says it changed; the rest is known to be in place. */
export function planDelta(
  desired: DesiredView,
  dirty: NonNullable<DesiredView['dirty']>,
  installed: InstalledState,
): BundlePlan {
  const plan = emptyPlan();
  for (const id of dirty.groups)
    planGroup(plan, id, desired.groups.get(id), installed.groups.get(id));
  for (const k of dirty.flows) planFlow(plan, desired.flows.get(k), installed.flows.get(k));
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

/** The bundle's lines, in the order the header comment explains. */
export function* bundleLines(p: BundlePlan): Generator<string> {
  for (const g of p.groupAdds) yield `group add ${renderGroup(g)}`;
  for (const g of p.groupMods) yield `group modify ${renderGroup(g)}`;
  for (const f of p.flowAdds) yield `flow add ${flowText(f)}`;
  for (const f of p.flowDeletes) {
    const match = renderMatch(f.match);
    yield `flow delete_strict table=${f.table},priority=${f.priority}${match ? ',' + match : ''}`;
  }
  for (const id of p.groupDeletes) yield `group delete group_id=${id}`;
}

/** The bundle file. */
export function bundleText(p: BundlePlan): string {
  const out = [...bundleLines(p)];
  return out.length ? out.join('\n') + '\n' : '';
}

/** Above this many changes the bundle is streamed to ovs-ofctl as it is rendered. */
const STREAM_AT = 2000;

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
    program: OpenFlowProgram | DesiredView,
    opts: { verify?: boolean; trusted?: boolean } = {},
  ): Promise<SyncResult> {
    const desired = isView(program) ? program : viewOf(program);
    try {
      return await this.syncInner(desired, opts);
    } catch (err) {
      // the changes handed to us are lost with this attempt: the next one compares everything
      this.installed = undefined;
      throw err;
    }
  }

  private async syncInner(
    desired: DesiredView,
    opts: { verify?: boolean; trusted?: boolean },
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
    // a cache we did not just re-read is exactly what we last installed: diff the changes only
    const plan =
      !reread && desired.dirty
        ? planDelta(desired, desired.dirty, this.installed)
        : planBundle(desired, this.installed);
    if (bundleSize(plan) > 0) {
      try {
        if (this.ofctl.install && isEmpty(this.installed))
          await this.ofctl.install(
            mapIter(plan.groupAdds, renderGroup),
            mapIter(plan.flowAdds, flowText),
          );
        else if (this.ofctl.bundleLines && bundleSize(plan) >= STREAM_AT)
          await this.ofctl.bundleLines(bundleLines(plan));
        else await this.ofctl.bundle(bundleText(plan));
      } catch (err) {
        // the bundle is atomic, so the switch kept its old state; read it again next time
        this.installed = undefined;
        throw err;
      }
    }
    if (!reread && desired.dirty) {
      const inst = this.installed;
      for (const k of desired.dirty.flows) {
        const f = desired.flows.get(k);
        if (f) inst.flows.set(k, f);
        else inst.flows.delete(k);
      }
      for (const id of desired.dirty.groups) {
        const g = desired.groups.get(id);
        if (g) inst.groups.set(id, g);
        else inst.groups.delete(id);
      }
    } else {
      this.installed = {
        flows: new Map(desired.flows),
        groups: new Map(desired.groups),
        unparsed: this.installed.unparsed,
      };
    }
    return { plan, reread, replayed, flows: desired.flows.size, groups: desired.groups.size };
  }
}

/** Nothing on the switch: a plan against it is adds only, and two plain bundles load it. */
const isEmpty = (st: InstalledState) =>
  st.flows.size === 0 && st.groups.size === 0 && st.unparsed.length === 0;

function* mapIter<T>(xs: Iterable<T>, f: (x: T) => string): Generator<string> {
  for (const x of xs) yield f(x);
}

const isFlowLine = (l: string) => /(^|[\s,])actions=/.test(l) && !l.startsWith('group_id=');
