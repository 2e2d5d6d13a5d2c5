// One private Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath) per lab node,
// started inside the node's namespace so the bridge's internal ports (LOCAL, gateway) appear
// there. Every file and socket lives in the instance's own directory: instances never collide
// and the system's default OVS socket is never touched.

import { constants } from 'node:fs';
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { OfctlTarget } from '../ovs/ofctl.js';
import { run, runInNs, type RunOptions, type RunResult } from './exec.js';
import { killPid, labDir, recordProcess } from './state.js';

export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
export const OVS_BINARIES = [
  'ovsdb-tool',
  'ovsdb-server',
  'ovs-vswitchd',
  'ovs-vsctl',
  'ovs-ofctl',
];

export interface OvsInstanceOptions {
  prefix: string;
  node: string;
  /** network namespace the daemons run in */
  ns: string;
  bridge?: string;
}

export interface BridgeOptions {
  /** MAC of the bridge's LOCAL port (other_config:hwaddr), so it never follows port changes */
  hwaddr?: string;
}

export class OvsInstance {
  readonly prefix: string;
  readonly node: string;
  readonly ns: string;
  readonly bridge: string;
  readonly dir: string;
  readonly db: string;
  readonly dbSocket: string;
  readonly ovsdbPidfile: string;
  readonly ovsdbCtl: string;
  readonly vswitchdPidfile: string;
  readonly vswitchdCtl: string;
  ovsdbPid?: number;
  vswitchdPid?: number;

  constructor(opts: OvsInstanceOptions) {
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(opts.node)) throw new Error(`bad node name ${opts.node}`);
    this.prefix = opts.prefix;
    this.node = opts.node;
    this.ns = opts.ns;
    this.bridge = opts.bridge ?? 'br-int';
    this.dir = join(labDir(opts.prefix), opts.node);
    this.db = join(this.dir, 'conf.db');
    this.dbSocket = join(this.dir, 'db.sock');
    this.ovsdbPidfile = join(this.dir, 'ovsdb-server.pid');
    this.ovsdbCtl = join(this.dir, 'ovsdb-server.ctl');
    this.vswitchdPidfile = join(this.dir, 'ovs-vswitchd.pid');
    this.vswitchdCtl = join(this.dir, 'ovs-vswitchd.ctl');
  }

  /** Where OVS would otherwise fall back to system paths (the mgmt socket goes to OVS_RUNDIR). */
  get env(): Record<string, string> {
    return {
      OVS_RUNDIR: this.dir,
      OVS_DBDIR: this.dir,
      OVS_LOGDIR: this.dir,
      OVS_SYSCONFDIR: this.dir,
    };
  }

  /** OpenFlow management socket of the bridge: `ovs-ofctl … unix:<this>`. */
  get mgmtSocket(): string {
    return join(this.dir, `${this.bridge}.mgmt`);
  }

  get ofctlTarget(): string {
    return `unix:${this.mgmtSocket}`;
  }

  /** How src/ovs/ofctl.ts reaches this bridge. */
  openflowTarget(): OfctlTarget {
    return { switch: this.ofctlTarget, env: this.env };
  }

  /** argv prefix for ovs-vsctl against this instance's database. */
  vsctlArgv(): string[] {
    return ['ovs-vsctl', `--db=unix:${this.dbSocket}`, '--timeout=15'];
  }

  /** argv prefix for ovs-ofctl; the bridge argument is `this.ofctlTarget`. */
  ofctlArgv(): string[] {
    return ['ovs-ofctl', '-O', 'OpenFlow15'];
  }

  /** argv prefix for ovs-appctl talking to this instance's ovs-vswitchd. */
  appctlArgv(): string[] {
    return ['ovs-appctl', '-t', this.vswitchdCtl];
  }

  // The control tools reach the daemons through path-named unix sockets, which do not depend on
  // the network namespace, so they run directly; env keeps them off the system's defaults.
  vsctl(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run([...this.vsctlArgv(), ...args], { ...opts, env: { ...this.env, ...opts.env } });
  }

  ofctl(command: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return run([...this.ofctlArgv(), command, this.ofctlTarget, ...args], {
      ...opts,
      env: { ...this.env, ...opts.env },
    });
  }

  appctl(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run([...this.appctlArgv(), ...args], { ...opts, env: { ...this.env, ...opts.env } });
  }

  /** Create the database and start both daemons inside the namespace; pids go to the lab state. */
  async start(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    const env = this.env;
    await run(['ovsdb-tool', 'create', this.db, VSWITCH_SCHEMA], { env });
    await runInNs(
      this.ns,
      [
        'ovsdb-server',
        this.db,
        `--remote=punix:${this.dbSocket}`,
        `--pidfile=${this.ovsdbPidfile}`,
        `--unixctl=${this.ovsdbCtl}`,
        `--log-file=${join(this.dir, 'ovsdb-server.log')}`,
        '--detach',
        '--no-chdir',
      ],
      { env },
    );
    this.ovsdbPid = await readPidfile(this.ovsdbPidfile);
    await recordProcess(this.prefix, {
      pid: this.ovsdbPid,
      role: `ovsdb-server ${this.node}`,
      ns: this.ns,
    });

    await this.vsctl(['--no-wait', 'init']);
    await this.startVswitchd();
  }

  /**
   * Start ovs-vswitchd on this instance's database (also after a crash: the bridge and its
   * ports come back from OVSDB); its pid goes to the lab state.
   */
  async startVswitchd(role = `ovs-vswitchd ${this.node}`): Promise<number> {
    await runInNs(
      this.ns,
      [
        'ovs-vswitchd',
        `unix:${this.dbSocket}`,
        '--disable-system',
        `--pidfile=${this.vswitchdPidfile}`,
        `--unixctl=${this.vswitchdCtl}`,
        `--log-file=${join(this.dir, 'ovs-vswitchd.log')}`,
        '--detach',
        '--no-chdir',
      ],
      { env: this.env, timeoutMs: 30_000 },
    );
    this.vswitchdPid = await readPidfile(this.vswitchdPidfile);
    await recordProcess(this.prefix, { pid: this.vswitchdPid, role, ns: this.ns });
    return this.vswitchdPid;
  }

  /** Create the userspace bridge: secure fail mode (no flows = no forwarding), OF 1.0/1.3/1.5. */
  async addBridge(opts: BridgeOptions = {}): Promise<void> {
    const set = [
      'datapath_type=netdev',
      'fail_mode=secure',
      'protocols=OpenFlow10,OpenFlow13,OpenFlow15',
    ];
    if (opts.hwaddr) set.push(`other_config:hwaddr=${JSON.stringify(opts.hwaddr)}`);
    await this.vsctl([
      '--may-exist',
      'add-br',
      this.bridge,
      '--',
      'set',
      'bridge',
      this.bridge,
      ...set,
    ]);
  }

  /**
   * Add a port with a fixed OpenFlow port number. `ifaceSettings` are extra Interface columns,
   * e.g. `type=internal` or `external_ids:key="value"`.
   */
  async addPort(name: string, ofport: number, ifaceSettings: string[] = []): Promise<void> {
    await this.vsctl([
      '--may-exist',
      'add-port',
      this.bridge,
      name,
      '--',
      'set',
      'interface',
      name,
      `ofport_request=${ofport}`,
      ...ifaceSettings,
    ]);
    const got = (await this.vsctl(['get', 'interface', name, 'ofport'])).stdout.trim();
    if (got !== String(ofport)) {
      throw new Error(`${this.node}: port ${name} got ofport ${got}, wanted ${ofport}`);
    }
  }

  /** Stop both daemons by their recorded pids. */
  async stop(): Promise<void> {
    if (this.vswitchdPid) await killPid(this.vswitchdPid, 'ovs-vswitchd');
    if (this.ovsdbPid) await killPid(this.ovsdbPid, 'ovsdb-server');
  }
}

async function readPidfile(path: string): Promise<number> {
  // --detach returns once the daemon is ready, so the pidfile exists; allow a short lag anyway.
  for (let i = 0; i < 50; i++) {
    try {
      const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
      if (Number.isInteger(pid) && pid > 1) return pid;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no pid in ${path}`);
}

/** Names of the OVS programs this lab needs that are not on PATH. */
export async function missingOvsBinaries(): Promise<string[]> {
  const missing: string[] = [];
  for (const b of OVS_BINARIES) if (!(await onPath(b))) missing.push(b);
  if (!(await onPath('ip'))) missing.push('ip');
  try {
    await access(VSWITCH_SCHEMA, constants.R_OK);
  } catch {
    missing.push(VSWITCH_SCHEMA);
  }
  return missing;
}

async function onPath(program: string): Promise<boolean> {
  // root's PATH may lack sbin on some CI images; OVS daemons live there
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    try {
      await access(join(d, program), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}
