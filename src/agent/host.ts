// The host side (routes, neighbours, interface switches, NodePort redirect) behind one
// interface; each backend reads the host, changes only the difference and reports it.
import { applyHostPlan, type LinuxHostOptions } from '../host/linux.js';
import type { HostPlan } from '../host/types.js';

export interface HostChange {
  /** what was run, for the log */
  command: string;
  why: string;
}

export interface HostBackend {
  readonly name: string;
  apply(plan: HostPlan): Promise<HostChange[]>;
}

export function linuxHostBackend(opts: LinuxHostOptions = {}): HostBackend {
  return {
    name: 'linux',
    async apply(plan) {
      const cmds = await applyHostPlan(plan, opts);
      return cmds.map((c) => ({ command: c.argv.join(' '), why: c.why }));
    },
  };
}
