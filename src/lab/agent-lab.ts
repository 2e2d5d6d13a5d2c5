// Node agents in the lab: one `svcflow agent` per lab node, run inside the node's namespace (so
// its Linux host backend changes that namespace and nothing else), all reading one manifest
// file. Also: editing that manifest atomically, comparing a node's switch with the compiled
// program, checking the host plan is in place, long-lived stream/dial processes, and killing
// and restarting a node's ovs-vswitchd the way a crash would.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';

import type { RawObject } from '../agent/source.js';
import { readObjectsFile } from '../cluster/load.js';
import { validateObjects } from '../cluster/validate.js';
import { parseConfig } from '../config/config.js';
import { resolveNode } from '../config/resolve.js';
import { observeHost, planHostCommands } from '../host/linux.js';
import { buildHostPlan } from '../host/plan.js';
import { canonicalFlow, parseFlow, parseGroup } from '../openflow/parse.js';
import { renderFlow, renderGroup } from '../openflow/render.js';
import type { Flow, OpenFlowProgram } from '../openflow/types.js';
import { compileNode } from '../pipeline/compile.js';
import { decodeCookie } from '../pipeline/cookies.js';
import type { ClusterLab } from './cluster-lab.js';
import { run } from './exec.js';
import type { OvsInstance } from './ovs-instance.js';
import { forgetProcess, killPid, labDir, ownsNamespace, recordProcess } from './state.js';
import { txOff, UPLINK_DEVICE, type LabNodeHandle } from './topology.js';

const here = dirname(fileURLToPath(import.meta.url));
const MAIN = join(here, '..', 'cli', 'main.ts');
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

const prefixLength = (cidr: string) => Number(cidr.split('/')[1]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` until it holds; throws (with the last problem seen) after `ms`. */
export async function waitFor(
  what: string,
  cond: () => Promise<true | string>,
  ms = 30_000,
  everyMs = 200,
): Promise<number> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    try {
      const r = await cond();
      if (r === true) return Date.now() - t0;
      last = r;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() - t0 > ms)
      throw new Error(`timed out after ${ms} ms waiting for ${what}: ${last}`);
    await sleep(everyMs);
  }
}

// ---------- the manifest ----------

/** Write the manifest atomically: readers see the old file or the new one, never a torn one. */
export async function writeManifest(path: string, objects: RawObject[]): Promise<void> {
  const tmp = join(dirname(path), `.${Date.now()}.tmp`);
  await writeFile(tmp, stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  await rename(tmp, path);
}

/** The lab's data-plane settings as the agent's `dataplane` document. */
function dataplaneDoc(cl: ClusterLab): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  if (cl.configPath) for (const o of readObjectsFile(cl.configPath)) Object.assign(doc, o);
  delete doc.apiVersion;
  delete doc.kind;
  delete doc.metadata;
  // as planClusterLab: the lab's uplink device has a fixed name
  return { ...doc, uplinkInterface: UPLINK_DEVICE };
}

/** What `svcflow compile` gives for these objects on `node` (cookie round `round`). */
export function compileFor(
  cl: ClusterLab,
  objects: RawObject[],
  node: string,
  round = 1,
): OpenFlowProgram & { hostPlan: ReturnType<typeof buildHostPlan> } {
  const { state } = validateObjects(objects);
  const dp = resolveNode(state, parseConfig([dataplaneDoc(cl)]), node);
  return { ...compileNode(state, dp, { round }), hostPlan: buildHostPlan(state, dp) };
}

// ---------- comparing a switch with a program ----------

const ROUND_MASK = (1n << 48n) - 1n;

function flowText(f: Flow, ignoreRound: boolean): string {
  const c = canonicalFlow(f);
  return renderFlow(ignoreRound ? { ...c, cookie: c.cookie & ROUND_MASK } : c);
}

/** Flows and groups as sorted canonical text; cookie rounds masked out when asked. */
export function programText(p: OpenFlowProgram, ignoreRound = true) {
  return {
    flows: p.flows.map((f) => flowText(f, ignoreRound)).sort(),
    groups: p.groups.map(renderGroup).sort(),
  };
}

const NOISE = /^(OFPST_|NXST_|OFPT_|OFPGC?_)\w+/;

/** The switch's flows and groups, parsed. */
export async function installedProgram(ovs: OvsInstance): Promise<OpenFlowProgram> {
  const lines = (text: string) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !NOISE.test(l));
  const flows = (await ovs.ofctl('dump-flows', ['--no-stats'])).stdout;
  const groups = (await ovs.ofctl('dump-groups')).stdout;
  return { flows: lines(flows).map(parseFlow), groups: lines(groups).map(parseGroup) };
}

/** Cookie rounds present on the switch. */
export function roundsOf(p: OpenFlowProgram): number[] {
  return [...new Set(p.flows.map((f) => decodeCookie(f.cookie).round))].sort((a, b) => a - b);
}

/** true when equal, else a short description of the first differences. */
export function diffPrograms(have: OpenFlowProgram, want: OpenFlowProgram): true | string {
  const a = programText(have);
  const b = programText(want);
  const missing = (x: string[], y: string[]) => {
    const s = new Set(y);
    return x.filter((l) => !s.has(l));
  };
  const out: string[] = [];
  const fm = missing(b.flows, a.flows);
  const fx = missing(a.flows, b.flows);
  const gm = missing(b.groups, a.groups);
  const gx = missing(a.groups, b.groups);
  if (fm.length) out.push(`${fm.length} flows missing, e.g. ${fm[0]}`);
  if (fx.length) out.push(`${fx.length} extra flows, e.g. ${fx[0]}`);
  if (gm.length) out.push(`${gm.length} groups missing, e.g. ${gm[0]}`);
  if (gx.length) out.push(`${gx.length} extra groups, e.g. ${gx[0]}`);
  return out.length ? out.join('; ') : true;
}

/** true when the node's host already matches the plan (the backend would run nothing). */
export async function hostConverged(
  ns: string,
  plan: ReturnType<typeof buildHostPlan>,
): Promise<true | string> {
  const cmds = planHostCommands(plan, await observeHost(plan, { ns }));
  return cmds.length === 0 ? true : `host still needs: ${cmds.map((c) => c.argv.join(' '))[0]}`;
}

// ---------- processes in lab namespaces ----------

export interface LabProc {
  pid: number;
  child: ChildProcess;
  lines: Record<string, unknown>[];
  /** resolves with the exit code */
  exited: Promise<number | null>;
  /** close stdin (the polite stop), wait, then kill by pid if it is still there */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Run one of our TypeScript programs inside a lab namespace, collecting its JSON stdout lines.
 * The pid goes to the lab state once the program has exec'd (first line, or `readyWhen`).
 */
async function spawnInNs(
  prefix: string,
  ns: string,
  role: string,
  program: string,
  args: string[],
  opts: { stdout: 'json' | 'log'; readyWhen?: () => Promise<boolean>; timeoutMs?: number },
): Promise<LabProc> {
  if (!ownsNamespace(prefix, ns)) throw new Error(`namespace ${ns} is not part of lab ${prefix}`);
  const logDir = join(labDir(prefix), 'logs');
  await mkdir(logDir, { recursive: true });
  const logPath = join(logDir, `${role.replace(/[^\w.-]/g, '_')}.log`);
  const logFd = openSync(logPath, 'a');
  const argv = [
    'ip',
    'netns',
    'exec',
    ns,
    process.execPath,
    '--import',
    tsxLoader,
    program,
    ...args,
  ];
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['pipe', opts.stdout === 'json' ? 'pipe' : logFd, logFd],
  });
  closeSync(logFd);
  const pid = child.pid;
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let firstLine: () => void = () => {};
  const gotLine = new Promise<void>((r) => (firstLine = r));
  if (child.stdout)
    createInterface({ input: child.stdout }).on('line', (l) => {
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
        firstLine();
      } catch {
        // not ours
      }
    });
  child.stdin?.on('error', () => {});
  const stop = async (graceMs = 15_000) => {
    child.stdin?.end();
    const t = setTimeout(() => void killPid(pid ?? 0, 'node'), graceMs);
    await exited;
    clearTimeout(t);
    await forgetProcess(prefix, pid ?? 0);
  };
  try {
    if (pid === undefined) throw new Error('no pid');
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const ready = opts.readyWhen
      ? waitFor(
          `${role} ready`,
          async () => ((await opts.readyWhen!()) ? true : 'not yet'),
          timeoutMs,
        )
      : Promise.race([
          gotLine,
          sleep(timeoutMs).then(() => {
            throw new Error(`no output within ${timeoutMs} ms`);
          }),
        ]);
    await Promise.race([
      ready,
      exited.then((c) => {
        throw new Error(`exited with ${c}`);
      }),
    ]);
    await recordProcess(prefix, { pid, role, ns });
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${role} in ${ns}: ${(e as Error).message} (see ${logPath})`);
  }
  return { pid, child, lines, exited, stop };
}

export interface LabAgent extends LabProc {
  node: string;
  ns: string;
  logPath: string;
}

/** Start `svcflow agent` for one lab node, reading `manifest`; resolves once it has synced. */
export async function startLabAgent(
  cl: ClusterLab,
  node: LabNodeHandle,
  manifest: string,
  opts: { logLevel?: string; minSyncIntervalMs?: number } = {},
): Promise<LabAgent> {
  const name = node.spec.nodeName;
  const dir = labDir(cl.prefix);
  const config = join(dir, `agent-${name}.yaml`);
  await writeFile(
    config,
    stringify({
      kind: 'SvcflowAgentConfig',
      nodeName: name,
      manifest,
      ofctlTarget: node.ovs.ofctlTarget,
      vsctl: node.ovs.vsctlArgv(),
      host: 'linux',
      // each node namespace has its own loopback: the default address cannot collide
      metricsAddress: '127.0.0.1:10256',
      logLevel: opts.logLevel ?? 'info',
      minSyncIntervalMs: opts.minSyncIntervalMs ?? 1000,
      dataplane: dataplaneDoc(cl),
    }),
  );
  const logPath = join(dir, 'logs', `agent_${name}.log`);
  let from = 0;
  try {
    from = (await readFile(logPath, 'utf8')).length;
  } catch {
    // first start
  }
  const synced = async () => {
    const text = (await readFile(logPath, 'utf8').catch(() => '')).slice(from);
    return /"msg":"synced"/.test(text);
  };
  const proc = await spawnInNs(
    cl.prefix,
    node.ns,
    `agent ${name}`,
    MAIN,
    ['agent', '--config', config],
    {
      stdout: 'log',
      readyWhen: synced,
      timeoutMs: 60_000,
    },
  );
  // the agent stops on SIGTERM, not on stdin: stop it by pid
  const stop = async (graceMs = 10_000) => {
    await killPid(proc.pid, 'node', graceMs);
    await proc.exited;
    await forgetProcess(cl.prefix, proc.pid);
  };
  return { ...proc, stop, node: name, ns: node.ns, logPath };
}

/** Lines the agent logged (pino JSON), from its log file. */
export async function agentLog(a: LabAgent): Promise<Record<string, unknown>[]> {
  const text = await readFile(a.logPath, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const STREAM = join(here, 'stream.ts');

/** A stream server (greeting + echo) in `ns` on `port`. */
export function startStreamServer(prefix: string, ns: string, name: string, port: number) {
  return spawnInNs(
    prefix,
    ns,
    `stream-server ${name}`,
    STREAM,
    ['serve', '--name', name, '--port', String(port)],
    {
      stdout: 'json',
    },
  );
}

/** A paced stream client; resolves once the server's greeting arrived. */
export async function startStreamClient(prefix: string, ns: string, host: string, port: number) {
  const p = await spawnInNs(
    prefix,
    ns,
    `stream-client ${host}:${port}`,
    STREAM,
    ['client', '--host', host, '--port', String(port)],
    { stdout: 'json' },
  );
  return p;
}

/** A dialer making a fresh WHO connection every `everyMs`. */
export function startDialer(prefix: string, ns: string, host: string, port: number, everyMs = 100) {
  return spawnInNs(
    prefix,
    ns,
    `dial ${host}:${port}`,
    STREAM,
    [
      'dial',
      '--host',
      host,
      '--port',
      String(port),
      '--every-ms',
      String(everyMs),
      '--timeout-ms',
      '400',
    ],
    { stdout: 'json' },
  );
}

// ---------- ovs-vswitchd crash and restart ----------

/** SIGKILL ovs-vswitchd (a crash: no cleanup), leaving ovsdb-server and the database. */
export async function killVswitchd(ovs: OvsInstance): Promise<void> {
  const pid = ovs.vswitchdPid;
  if (!pid) throw new Error(`${ovs.node}: no ovs-vswitchd pid`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await killPid(pid, 'ovs-vswitchd', 1000);
  await forgetProcess(ovs.prefix, pid);
  ovs.vswitchdPid = undefined;
}

/** Start ovs-vswitchd again on the instance's database: the bridge and ports come from OVSDB. */
export async function startVswitchd(ovs: OvsInstance): Promise<void> {
  await ovs.startVswitchd();
}

/**
 * The userspace datapath's internal ports (LOCAL, the gateway) are tap devices owned by
 * ovs-vswitchd: they vanish with it and come back bare. Put back the node's own addresses on
 * them, as the node's network configuration would; everything else is the agent's host plan.
 */
export async function restoreNodeDevices(cl: ClusterLab, node: LabNodeHandle): Promise<void> {
  const ns = node.ns;
  const bridge = cl.spec.bridge ?? 'br-int';
  const gw = cl.spec.gatewayInterface ?? 'gw0';
  const len = prefixLength(cl.spec.underlayCIDR);
  const ip = (args: string[]) => run(['ip', '-n', ns, ...args]);
  await waitFor(
    `${bridge} and ${gw} in ${ns}`,
    async () => {
      const r = await run(['ip', '-n', ns, '-o', 'link', 'show'], { allowFailure: true });
      return r.stdout.includes(`: ${bridge}:`) && r.stdout.includes(`: ${gw}:`) ? true : 'not yet';
    },
    10_000,
    20,
  );
  await ip(['link', 'set', bridge, 'up']);
  for (const a of node.spec.nodeIPs) await ip(['addr', 'replace', `${a}/${len}`, 'dev', bridge]);
  await txOff(ns, bridge);
  await ip(['link', 'set', gw, 'address', node.spec.gatewayMAC, 'up']);
  await ip([
    'addr',
    'replace',
    `${node.spec.gatewayIP}/${prefixLength(node.spec.podCIDR)}`,
    'dev',
    gw,
  ]);
  await txOff(ns, gw);
}
