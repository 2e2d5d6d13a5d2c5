// Starting the echo server and running probes inside lab namespaces. Both are our TypeScript
// programs run by this Node binary with tsx's loader; `ip netns exec` execs in place, so the
// pid we get is the server's own.

import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { echoServerArgs, type EchoServerOptions } from './echo-server.js';
import { runInNs } from './exec.js';
import type { ProbeResult, ProbeSpec } from './probe.js';
import { labDir, ownsNamespace, recordProcess, validatePrefix } from './state.js';

const here = dirname(fileURLToPath(import.meta.url));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

function tsProgram(file: string, args: string[]): string[] {
  return [process.execPath, '--import', tsxLoader, join(here, file), ...args];
}

/** Start an echo server in `ns` (a namespace of the lab `prefix`); returns its pid. */
export async function spawnEchoServer(
  prefix: string,
  ns: string,
  opts: EchoServerOptions,
  timeoutMs = 20_000,
): Promise<number> {
  validatePrefix(prefix);
  if (!ownsNamespace(prefix, ns)) throw new Error(`namespace ${ns} is not part of lab ${prefix}`);
  const logDir = join(labDir(prefix), 'logs');
  await mkdir(logDir, { recursive: true });
  const logName = `echo-${ns}-${opts.name}`.replace(/[^\w.-]/g, '_');
  const logFd = openSync(join(logDir, `${logName}.log`), 'a');
  const argv = ['ip', 'netns', 'exec', ns, ...tsProgram('echo-server.ts', echoServerArgs(opts))];
  const child = spawn(argv[0], argv.slice(1), {
    detached: true,
    stdio: ['ignore', 'pipe', logFd],
  });
  closeSync(logFd);
  const pid = child.pid;
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`no READY within ${timeoutMs} ms`)),
        timeoutMs,
      );
      child.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('READY\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code}`));
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    if (pid === undefined) throw new Error('no pid');
    await recordProcess(prefix, { pid, role: `echo ${opts.name}`, ns });
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`echo server ${opts.name} in ${ns}: ${(e as Error).message} (see ${logDir})`);
  }
  child.stdout?.destroy();
  child.removeAllListeners('exit');
  child.unref();
  return pid;
}

/**
 * Run probes from inside `ns`, `concurrency` at a time; each probe carries its own timeout, the
 * whole run is bounded.
 */
export async function runProbes(
  ns: string,
  specs: ProbeSpec[],
  concurrency = 1,
): Promise<ProbeResult[]> {
  const budget = specs.reduce((t, s) => t + (s.timeoutMs ?? 3000) + 1000, 15_000);
  const r = await runInNs(ns, tsProgram('probe.ts', [JSON.stringify(specs), String(concurrency)]), {
    timeoutMs: budget,
  });
  return JSON.parse(r.stdout) as ProbeResult[];
}
