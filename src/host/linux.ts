// Linux host backend: makes a node's host match a HostPlan. It reads the current state
// (ip -json, sysctl, ethtool -k, nft -j), computes only the commands needed to close the gap
// (a pure function, testable without root), and runs them. A second apply changes nothing.

import { runInNs, type RunResult } from '../lab/exec.js';
import type { HostNodePortRedirect, HostPlan, HostRoute } from './types.js';

/** Routes we install carry this protocol number, so stale ones can be found and removed. */
export const ROUTE_PROTOCOL = '212';
export const NFT_TABLE = 'svcflow';

export interface ObservedRoute {
  dst: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  protocol?: string;
}

export interface ObservedNeighbor {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export interface ObservedHostState {
  /** IPv4 main table */
  routes: ObservedRoute[];
  neighbors: ObservedNeighbor[];
  /** sysctl key → current value; absent when unreadable (e.g. device missing) */
  sysctls: Record<string, string>;
  /** device → tx checksum offload on? absent when unknown */
  txChecksum: Record<string, boolean>;
  /** canonical rules of `table ip svcflow`, or null when the table does not exist */
  nft: string[] | null;
}

export interface HostCommand {
  argv: string[];
  /** stdin for the command (the nft script) */
  input?: string;
  why: string;
}

// ---------- pure part ----------

function normDst(dst: string): string {
  if (dst === 'default') return '0.0.0.0/0';
  return dst.includes('/') ? dst : `${dst}/32`;
}

function sameRoute(want: HostRoute, have: ObservedRoute): boolean {
  return (
    have.dev === want.device &&
    (have.gateway ?? undefined) === (want.via ?? undefined) &&
    (have.prefsrc ?? undefined) === (want.source ?? undefined) &&
    have.protocol === ROUTE_PROTOCOL
  );
}

function routeCommands(plan: HostPlan, observed: ObservedHostState): HostCommand[] {
  const out: HostCommand[] = [];
  const wanted = new Set(plan.routes.map((r) => normDst(r.destination)));
  for (const r of plan.routes) {
    const dst = normDst(r.destination);
    const have = observed.routes.filter((o) => normDst(o.dst) === dst);
    if (have.some((h) => sameRoute(r, h))) continue;
    const argv = ['ip', 'route', 'replace', dst, 'dev', r.device];
    // onlink: next hops such as a virtual gateway address are not inside any local subnet
    if (r.via) argv.push('via', r.via, 'onlink');
    if (r.source) argv.push('src', r.source);
    argv.push('proto', ROUTE_PROTOCOL);
    out.push({ argv, why: r.why });
  }
  for (const o of observed.routes) {
    if (o.protocol === ROUTE_PROTOCOL && !wanted.has(normDst(o.dst))) {
      const argv = ['ip', 'route', 'del', normDst(o.dst), 'proto', ROUTE_PROTOCOL];
      if (o.dev) argv.push('dev', o.dev);
      out.push({ argv, why: 'route installed by svcflow, no longer planned' });
    }
  }
  return out;
}

function neighborCommands(plan: HostPlan, observed: ObservedHostState): HostCommand[] {
  const out: HostCommand[] = [];
  for (const n of plan.neighbors) {
    const ok = observed.neighbors.some(
      (o) =>
        o.dst === n.ip &&
        o.dev === n.device &&
        o.lladdr?.toLowerCase() === n.mac.toLowerCase() &&
        (o.state ?? []).includes('PERMANENT'),
    );
    if (ok) continue;
    out.push({
      argv: ['ip', 'neigh', 'replace', n.ip, 'lladdr', n.mac, 'dev', n.device, 'nud', 'permanent'],
      why: n.why,
    });
  }
  return out;
}

/** sysctl's dotted key for a device (a dot inside the device name is written as '/'). */
export function confKey(dev: string, name: string): string {
  return `net.ipv4.conf.${dev.replace(/\./g, '/')}.${name}`;
}

interface WantedSysctl {
  key: string;
  value: string;
  why: string;
}

/** Every sysctl the plan wants, in the order they must be written. */
export function wantedSysctls(plan: HostPlan): WantedSysctl[] {
  // ip_forward first: writing it resets every device's forwarding, so per-device values follow
  const first: WantedSysctl[] = [
    {
      key: 'net.ipv4.ip_forward',
      value: '1',
      why: 'the node routes between uplink, gateway and pods',
    },
  ];
  const all: WantedSysctl[] = [];
  const dev: WantedSysctl[] = [];
  const b = (v: boolean) => (v ? '1' : '0');
  const rpWanted: number[] = [];
  let redirectsOff = false;
  for (const s of plan.interfaces) {
    const add = (name: string, value: string) =>
      dev.push({ key: confKey(s.device, name), value, why: s.why });
    if (s.forwarding !== undefined) add('forwarding', b(s.forwarding));
    if (s.acceptLocal !== undefined) add('accept_local', b(s.acceptLocal));
    if (s.rpFilter !== undefined) {
      add('rp_filter', String(s.rpFilter));
      rpWanted.push(s.rpFilter);
    }
    if (s.sendRedirects !== undefined) {
      add('send_redirects', b(s.sendRedirects));
      if (!s.sendRedirects) redirectsOff = true;
    }
    if (s.routeLocalnet !== undefined) add('route_localnet', b(s.routeLocalnet));
  }
  if (rpWanted.length) {
    // the effective rp_filter is max(all, device): `all` must not exceed the loosest wish
    all.push({
      key: 'net.ipv4.conf.all.rp_filter',
      value: String(Math.min(...rpWanted)),
      why: 'effective rp_filter is max(all, device)',
      // only lowered, never raised: see sysctlCommands
    });
  }
  if (redirectsOff) {
    all.push({
      key: 'net.ipv4.conf.all.send_redirects',
      value: '0',
      why: 'redirects are sent when all OR the device allows them',
    });
  }
  return [...first, ...all, ...dev];
}

function sysctlCommands(plan: HostPlan, observed: ObservedHostState): HostCommand[] {
  const out: HostCommand[] = [];
  for (const w of wantedSysctls(plan)) {
    const have = observed.sysctls[w.key];
    if (have === w.value) continue;
    if (
      w.key === 'net.ipv4.conf.all.rp_filter' &&
      have !== undefined &&
      Number(have) <= Number(w.value)
    ) {
      continue;
    }
    out.push({ argv: ['sysctl', '-q', '-w', `${w.key}=${w.value}`], why: w.why });
  }
  return out;
}

function offloadCommands(plan: HostPlan, observed: ObservedHostState): HostCommand[] {
  const out: HostCommand[] = [];
  const seen = new Set<string>();
  for (const s of plan.interfaces) {
    if (s.txChecksumOffload === undefined || seen.has(s.device)) continue;
    seen.add(s.device);
    if (observed.txChecksum[s.device] === s.txChecksumOffload) continue;
    out.push({
      argv: ['ethtool', '-K', s.device, 'tx', s.txChecksumOffload ? 'on' : 'off'],
      why: s.why,
    });
  }
  return out;
}

const protoName = (p: HostNodePortRedirect['protocol']) => p.toLowerCase();

function addrMatch(addresses: string[]): string {
  const sorted = [...new Set(addresses)].sort();
  return sorted.length === 1 ? sorted[0] : `{ ${sorted.join(', ')} }`;
}

interface NftRule {
  chain: 'prerouting' | 'output' | 'postrouting';
  text: string;
}

function nftRules(plan: HostPlan): NftRule[] {
  const rules: NftRule[] = [];
  const snat = new Set<string>();
  for (const r of plan.nodePortRedirects) {
    rules.push({
      chain: 'output',
      text: `ip daddr ${addrMatch(r.addresses)} ${protoName(r.protocol)} dport ${r.port} dnat to ${r.toIP}`,
    });
    if (r.forwarded && r.forwarded.addresses.length)
      rules.push({
        chain: 'prerouting',
        text: `iifname "${r.forwarded.device}" ip daddr ${addrMatch(r.forwarded.addresses)} ${protoName(r.protocol)} dport ${r.port} dnat to ${r.toIP}`,
      });
    const s = `oifname "${r.device}" ip daddr ${r.toIP} snat to ${r.snatIP}`;
    if (!snat.has(s)) rules.push({ chain: 'postrouting', text: s });
    snat.add(s);
  }
  return rules;
}

const CHAINS = [
  { name: 'prerouting', hook: 'prerouting', prio: -100 },
  { name: 'output', hook: 'output', prio: -100 },
  { name: 'postrouting', hook: 'postrouting', prio: 100 },
] as const;

/** output and postrouting always; prerouting only when pods' redirects need it. */
function chainsFor(rules: NftRule[]) {
  return CHAINS.filter((c) => c.name !== 'prerouting' || rules.some((r) => r.chain === c.name));
}

/** The nft script replacing `table ip svcflow` in one transaction (empty plan: no table). */
export function nftScript(plan: HostPlan): string {
  const rules = nftRules(plan);
  // declaring the table first lets `delete` succeed whether or not it exists
  const lines = [`table ip ${NFT_TABLE}`, `delete table ip ${NFT_TABLE}`];
  if (rules.length) {
    lines.push(`table ip ${NFT_TABLE} {`);
    for (const c of chainsFor(rules)) {
      lines.push(`  chain ${c.name} {`);
      lines.push(`    type nat hook ${c.hook} priority ${c.prio}; policy accept;`);
      for (const r of rules.filter((x) => x.chain === c.name)) lines.push(`    ${r.text}`);
      lines.push('  }');
    }
    lines.push('}');
  }
  return lines.join('\n') + '\n';
}

/** The canonical form of what nftScript installs, comparable with parseNftJson's output. */
export function canonicalNft(plan: HostPlan): string[] | null {
  const rules = nftRules(plan);
  if (!rules.length) return null;
  const out = chainsFor(rules).map((c) => `chain ${c.name} nat ${c.hook} ${c.prio} accept`);
  for (const r of rules)
    out.push(`rule ${r.chain} ${r.text.replace(/\{ (.*) \}/, '{$1}').replace(/, /g, ',')}`);
  return out.sort();
}

type Json = Record<string, unknown>;

function exprText(e: Json): string {
  const side = (v: unknown): string => {
    if (v && typeof v === 'object') {
      const o = v as Json;
      if (o.payload) {
        const p = o.payload as Json;
        return `${p.protocol} ${p.field}`;
      }
      if (o.meta) return String((o.meta as Json).key);
      if (Array.isArray(o.set)) return `{${(o.set as unknown[]).map(String).sort().join(',')}}`;
      return JSON.stringify(v);
    }
    return typeof v === 'string' && !/^[\d.]+$/.test(v) ? `"${v}"` : String(v);
  };
  if (e.match) {
    const m = e.match as Json;
    const op = m.op === '==' ? '' : `${m.op} `;
    return `${side(m.left)} ${op}${side(m.right)}`;
  }
  for (const nat of ['dnat', 'snat'] as const) {
    if (e[nat]) {
      const n = e[nat] as Json;
      return `${nat} to ${n.addr}${n.port !== undefined ? `:${n.port}` : ''}`;
    }
  }
  return JSON.stringify(e);
}

/** Canonical rules from `nft -j list table ip svcflow`. */
export function parseNftJson(text: string): string[] {
  const doc = JSON.parse(text) as { nftables: Json[] };
  const out: string[] = [];
  for (const item of doc.nftables) {
    if (item.chain) {
      const c = item.chain as Json;
      out.push(`chain ${c.name} ${c.type} ${c.hook} ${c.prio} ${c.policy}`);
    } else if (item.rule) {
      const r = item.rule as Json;
      out.push(`rule ${r.chain} ${(r.expr as Json[]).map(exprText).join(' ')}`);
    }
  }
  return out.sort();
}

function nftCommands(plan: HostPlan, observed: ObservedHostState): HostCommand[] {
  const want = canonicalNft(plan);
  const same =
    want === null
      ? observed.nft === null
      : observed.nft !== null && JSON.stringify(want) === JSON.stringify(observed.nft);
  if (same) return [];
  if (want === null) {
    return [
      { argv: ['nft', 'delete', 'table', 'ip', NFT_TABLE], why: 'no NodePort redirects planned' },
    ];
  }
  return [
    {
      argv: ['nft', '-f', '-'],
      input: nftScript(plan),
      why: 'host-originated NodePort traffic is DNATed into OVS',
    },
  ];
}

/** Commands that bring `observed` to `plan`, in the order they must run. Pure. */
export function planHostCommands(plan: HostPlan, observed: ObservedHostState): HostCommand[] {
  return [
    ...sysctlCommands(plan, observed),
    ...offloadCommands(plan, observed),
    ...routeCommands(plan, observed),
    ...neighborCommands(plan, observed),
    ...nftCommands(plan, observed),
  ];
}

/** `ethtool -k` output → is tx-checksumming on? */
export function parseTxChecksum(text: string): boolean | undefined {
  const m = /^tx-checksumming:\s+(on|off)/m.exec(text);
  return m ? m[1] === 'on' : undefined;
}

/** `sysctl k1 k2 …` output ("key = value" lines) → map. */
export function parseSysctl(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s*=\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}

// ---------- effectful part ----------

export interface LinuxHostOptions {
  /** run everything inside this network namespace (the lab); undefined = this host */
  ns?: string;
}

async function sh(opts: LinuxHostOptions, argv: string[], input?: string): Promise<RunResult> {
  return runInNs(opts.ns, argv, { input });
}

/** Read the parts of the host the plan cares about. */
export async function observeHost(
  plan: HostPlan,
  opts: LinuxHostOptions = {},
): Promise<ObservedHostState> {
  const routes = JSON.parse(
    (await sh(opts, ['ip', '-json', '-4', 'route', 'show', 'table', 'main'])).stdout || '[]',
  ) as ObservedRoute[];
  const neighbors = JSON.parse(
    (await sh(opts, ['ip', '-json', '-4', 'neigh', 'show'])).stdout || '[]',
  ) as ObservedNeighbor[];
  const keys = [...new Set(wantedSysctls(plan).map((w) => w.key))];
  // missing keys make sysctl exit non-zero but the others are still printed
  const sys = await runInNs(opts.ns, ['sysctl', ...keys], { allowFailure: true });
  const txChecksum: Record<string, boolean> = {};
  for (const dev of new Set(
    plan.interfaces.filter((s) => s.txChecksumOffload !== undefined).map((s) => s.device),
  )) {
    const r = await runInNs(opts.ns, ['ethtool', '-k', dev], { allowFailure: true });
    const on = r.code === 0 ? parseTxChecksum(r.stdout) : undefined;
    if (on !== undefined) txChecksum[dev] = on;
  }
  const nftRes = await runInNs(opts.ns, ['nft', '-j', 'list', 'table', 'ip', NFT_TABLE], {
    allowFailure: true,
  });
  return {
    routes,
    neighbors,
    sysctls: parseSysctl(sys.stdout),
    txChecksum,
    nft: nftRes.code === 0 ? parseNftJson(nftRes.stdout) : null,
  };
}

/** Apply the plan; returns the commands that were run (empty when nothing differed). */
export async function applyHostPlan(
  plan: HostPlan,
  opts: LinuxHostOptions = {},
): Promise<HostCommand[]> {
  const observed = await observeHost(plan, opts);
  const commands = planHostCommands(plan, observed);
  for (const c of commands) await sh(opts, c.argv, c.input);
  return commands;
}

/** Remove what the backend owns: its routes (by protocol) and the nft table. */
export async function clearHost(opts: LinuxHostOptions = {}): Promise<void> {
  const empty: HostPlan = {
    nodeName: '',
    routes: [],
    neighbors: [],
    interfaces: [],
    nodePortRedirects: [],
  };
  const observed = await observeHost(empty, opts);
  // sysctls and offloads are left as they are: they have no owner marker to undo safely
  const commands = [...routeCommands(empty, observed), ...nftCommands(empty, observed)];
  for (const c of commands) await sh(opts, c.argv, c.input);
}
