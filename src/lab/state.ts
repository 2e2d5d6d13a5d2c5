// The lab's record of what it created: namespaces and process ids, kept in a state file under
// the lab's run directory so `down` (or cleanup after a failed `up`) kills exactly those pids.

import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const LAB_ROOT = '/run/svcflow-lab';

export interface LabProcess {
  pid: number;
  /** /proc/PID/comm when recorded: a reused pid with another name is never killed */
  comm: string;
  role: string;
  ns?: string;
}

export interface LabState {
  prefix: string;
  namespaces: string[];
  processes: LabProcess[];
}

// Short, dash-free prefixes keep every derived name unambiguous ("svl-" never matches "svl2-")
// and leave room for interface names.
const PREFIX_RE = /^[a-z][a-z0-9]{0,7}$/;

export function validatePrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new Error(`lab prefix ${JSON.stringify(prefix)} must match ${PREFIX_RE}`);
  }
}

export function labDir(prefix: string): string {
  validatePrefix(prefix);
  return join(LAB_ROOT, prefix);
}

export function statePath(prefix: string): string {
  return join(labDir(prefix), 'state.json');
}

/** True when `ns` belongs to the lab with this prefix (and so may be touched by it). */
export function ownsNamespace(prefix: string, ns: string): boolean {
  return ns.startsWith(`${prefix}-`);
}

export async function readState(prefix: string): Promise<LabState | undefined> {
  try {
    const parsed = JSON.parse(await readFile(statePath(prefix), 'utf8')) as LabState;
    if (parsed.prefix !== prefix) return undefined;
    return parsed;
  } catch {
    return undefined;
  }
}

// Updates are serialised so concurrent recordings inside one `up` never lose each other.
const chains = new Map<string, Promise<unknown>>();

async function update(prefix: string, change: (s: LabState) => void): Promise<void> {
  const prev = chains.get(prefix) ?? Promise.resolve();
  const next = prev.then(async () => {
    const dir = labDir(prefix);
    await mkdir(dir, { recursive: true });
    const state = (await readState(prefix)) ?? { prefix, namespaces: [], processes: [] };
    change(state);
    const tmp = `${statePath(prefix)}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 2) + '\n');
    await rename(tmp, statePath(prefix));
  });
  chains.set(
    prefix,
    next.catch(() => {}),
  );
  return next;
}

export async function recordNamespace(prefix: string, ns: string): Promise<void> {
  if (!ownsNamespace(prefix, ns)) throw new Error(`namespace ${ns} is not under prefix ${prefix}`);
  await update(prefix, (s) => {
    if (!s.namespaces.includes(ns)) s.namespaces.push(ns);
  });
}

export async function recordProcess(prefix: string, p: Omit<LabProcess, 'comm'>): Promise<void> {
  const comm = await procComm(p.pid);
  if (comm === undefined) throw new Error(`process ${p.pid} (${p.role}) is not running`);
  await update(prefix, (s) => {
    s.processes = s.processes.filter((q) => q.pid !== p.pid);
    s.processes.push({ ...p, comm });
  });
}

export async function forgetProcess(prefix: string, pid: number): Promise<void> {
  await update(prefix, (s) => {
    s.processes = s.processes.filter((q) => q.pid !== pid);
  });
}

/** The process's name, or undefined when it is gone (a zombie counts as gone). */
export async function procComm(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (stat.slice(close + 2, close + 3) === 'Z') return undefined;
    return stat.slice(open + 1, close);
  } catch {
    return undefined;
  }
}

/** True while the process exists and is not a zombie (daemons reparented to a container's
 * init may never be reaped, but a zombie holds no sockets or devices). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stop one process: SIGTERM, then SIGKILL after `graceMs`. When `comm` is given the process is
 * only signalled while its name still matches, so a recycled pid is left alone.
 * Returns true when the process is gone.
 */
export async function killPid(pid: number, comm?: string, graceMs = 2000): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return false;
  const matches = async () => {
    const c = await procComm(pid);
    return c !== undefined && (comm === undefined || c === comm);
  };
  if (!(await matches())) return true;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return !isAlive(pid);
  }
  for (let waited = 0; waited < graceMs; waited += 50) {
    if (!(await matches())) return true;
    await sleep(50);
  }
  if (await matches()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    for (let waited = 0; waited < 1000 && (await matches()); waited += 50) await sleep(50);
  }
  return !(await matches());
}
