// Running programs for the lab and the host backend: argument arrays only (no shell), a bounded
// timeout on every call, and errors that say which command failed and what it printed.

import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Kill the program after this long. Every call is bounded; the default suits ip/ovs tools. */
  timeoutMs?: number;
  /** Extra environment variables, merged over the current environment. */
  env?: Record<string, string>;
  /** Written to the program's stdin, which is then closed. */
  input?: string;
  /** Resolve with the exit code instead of rejecting when it is non-zero. */
  allowFailure?: boolean;
}

export interface RunResult {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
}

export const DEFAULT_TIMEOUT_MS = 20_000;

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
    reason: string,
  ) {
    super(`${formatArgv(argv)}: ${reason}${stderr.trim() ? `\n${stderr.trim()}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Quote an argv for messages only; nothing is ever passed through a shell. */
export function formatArgv(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** The argv that runs `argv` inside network namespace `ns` (or as is when ns is undefined). */
export function inNs(ns: string | undefined, argv: string[]): string[] {
  return ns === undefined ? argv : ['ip', 'netns', 'exec', ns, ...argv];
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new Error('run: empty argv');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(argv, null, '', '', e.message));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new CommandError(argv, code, stdout, stderr, `timed out after ${timeoutMs} ms`));
      } else if (code !== 0 && !opts.allowFailure) {
        const why = code === null ? `killed by ${signal}` : `exit code ${code}`;
        reject(new CommandError(argv, code, stdout, stderr, why));
      } else {
        resolve({ argv, code: code ?? -1, stdout, stderr });
      }
    });
    // A program that exits before reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Run `argv` inside network namespace `ns` via `ip netns exec`. */
export function runInNs(
  ns: string | undefined,
  argv: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return run(inNs(ns, argv), opts);
}
