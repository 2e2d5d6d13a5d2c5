// Builds a lab from a LabSpec: an underlay namespace with a Linux bridge, an external client,
// and per node a namespace playing the node's host with its own userspace OVS (Windows-style:
// the uplink is an OVS port, the node IP sits on the bridge's LOCAL port, gw0 holds the pod
// gateway IP), plus one namespace per pod. Everything is named under the lab prefix, and `down`
// removes only what carries that prefix.

import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { LocalPod, NodeDataplane } from '../config/types.js';
import { run, runInNs } from './exec.js';
import { inCidr, isMAC, requireCidr } from '../net/ipv4.js';

const prefixLength = (cidr: string) => requireCidr(cidr).prefix;
import { OvsInstance } from './ovs-instance.js';
import {
  killPid,
  labDir,
  ownsNamespace,
  readState,
  recordNamespace,
  validatePrefix,
} from './state.js';

export interface LabPod extends LocalPod {
  /** hostNetwork pods share the node's namespace: nothing is created for them */
  hostNetwork?: boolean;
}

/** One node; field names follow NodeDataplane so a compiled dataplane maps straight across. */
export interface LabNode {
  nodeName: string;
  /** main first; all inside the lab's underlay CIDR */
  nodeIPs: string[];
  podCIDR: string;
  gatewayIP: string;
  gatewayMAC: string;
  gatewayPort: number;
  uplinkPort: number;
  /** MAC of the bridge's LOCAL port, i.e. the node's own MAC on the underlay; derived if unset */
  localMAC?: string;
  localPods: LabPod[];
}

export interface LabSpec {
  /** lowercase, ≤ 8 chars, no dash; every namespace is `<prefix>-…` */
  prefix: string;
  underlayCIDR: string;
  external: { ip: string };
  bridge?: string;
  gatewayInterface?: string;
  nodes: LabNode[];
}

export interface LabPodHandle {
  pod: LabPod;
  /** the pod's namespace, or the node's for hostNetwork pods */
  ns: string;
  /** the OVS port's device in the node namespace (undefined for hostNetwork pods) */
  hostDevice?: string;
}

export interface LabNodeHandle {
  spec: LabNode;
  ns: string;
  ovs: OvsInstance;
  uplinkDevice: string;
  pods: LabPodHandle[];
}

export interface Lab {
  spec: LabSpec;
  dir: string;
  underlayNs: string;
  externalNs: string;
  nodes: LabNodeHandle[];
}

export interface LabUpOptions {
  /** called after each node is complete; a throw here exercises failure cleanup */
  afterNode?: (node: LabNodeHandle) => void | Promise<void>;
}

export interface LabDownReport {
  killed: number[];
  namespaces: string[];
  /** pids that would not die (should be empty) */
  survivors: number[];
}

export const UPLINK_DEVICE = 'uplink0';
const UNDERLAY_BRIDGE = 'br0';

export const underlayNs = (prefix: string) => `${prefix}-underlay`;
export const externalNs = (prefix: string) => `${prefix}-ext`;
export const nodeNs = (prefix: string, node: string) => `${prefix}-${node}`;
export const podNs = (prefix: string, node: string, index: number) => `${prefix}-${node}-${index}`;
/** host side of a pod's veth, named after its ofport (≤ 15 chars) */
export const podHostDevice = (ofport: number) => `veth-p${ofport}`;

export function labNodeFromDataplane(dp: NodeDataplane, localMAC?: string): LabNode {
  return {
    nodeName: dp.nodeName,
    nodeIPs: dp.nodeIPs,
    podCIDR: dp.podCIDR,
    gatewayIP: dp.gatewayIP,
    gatewayMAC: dp.gatewayMAC,
    gatewayPort: dp.gatewayPort,
    uplinkPort: dp.uplinkPort,
    localMAC,
    localPods: dp.localPods.map((p) => ({ ...p })),
  };
}

/** Deterministic locally administered MACs for node index i (kind 0: LOCAL, 1: uplink). */
function nodeMAC(i: number, kind: 0 | 1): string {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `0a:5f:00:${hex(kind)}:${hex((i >> 8) & 0xff)}:${hex(i & 0xff)}`;
}

/** Reject a spec before anything is created: names, address plans, port numbers. */
export function validateSpec(spec: LabSpec): void {
  validatePrefix(spec.prefix);
  const problems: string[] = [];
  const inUnderlay = (ip: string) => inCidr(spec.underlayCIDR, ip);
  requireCidr(spec.underlayCIDR);
  if (!inUnderlay(spec.external.ip)) problems.push(`external ${spec.external.ip} not in underlay`);
  const names = new Set([underlayNs(spec.prefix), externalNs(spec.prefix)]);
  const claim = (ns: string) => {
    if (names.has(ns)) problems.push(`namespace name ${ns} used twice`);
    names.add(ns);
  };
  const ips = new Set([spec.external.ip]);
  for (const n of spec.nodes) {
    if (!/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/.test(n.nodeName)) {
      problems.push(`node name ${n.nodeName}: lowercase letters, digits, dashes, ≤ 22 chars`);
    }
    claim(nodeNs(spec.prefix, n.nodeName));
    if (n.nodeIPs.length === 0) problems.push(`${n.nodeName}: no node IP`);
    for (const ip of n.nodeIPs) {
      if (!inUnderlay(ip)) problems.push(`${n.nodeName}: node IP ${ip} not in underlay`);
      if (ips.has(ip)) problems.push(`${ip} used twice`);
      ips.add(ip);
    }
    requireCidr(n.podCIDR);
    if (!inCidr(n.podCIDR, n.gatewayIP)) problems.push(`${n.nodeName}: gateway not in podCIDR`);
    if (!isMAC(n.gatewayMAC)) problems.push(`${n.nodeName}: bad gateway MAC`);
    if (n.localMAC !== undefined && !isMAC(n.localMAC))
      problems.push(`${n.nodeName}: bad LOCAL MAC`);
    const ports = new Set([n.gatewayPort, n.uplinkPort]);
    if (ports.size !== 2) problems.push(`${n.nodeName}: gateway and uplink share an ofport`);
    n.localPods.forEach((p, i) => {
      if (p.hostNetwork) return;
      claim(podNs(spec.prefix, n.nodeName, i));
      if (!inCidr(n.podCIDR, p.ip)) problems.push(`${p.namespace}/${p.name}: IP not in podCIDR`);
      if (!isMAC(p.mac)) problems.push(`${p.namespace}/${p.name}: bad MAC`);
      if (ports.has(p.ofport) || !(p.ofport >= 1 && p.ofport < 65280)) {
        problems.push(`${p.namespace}/${p.name}: ofport ${p.ofport} taken or out of range`);
      }
      ports.add(p.ofport);
      if (podHostDevice(p.ofport).length > 15) problems.push(`ofport ${p.ofport} too large`);
      if (ips.has(p.ip)) problems.push(`${p.ip} used twice`);
      ips.add(p.ip);
    });
  }
  if (problems.length) throw new Error(`invalid lab spec:\n  ${problems.join('\n  ')}`);
}

const ipn = (ns: string, args: string[]) => run(['ip', '-n', ns, ...args]);

async function addNamespace(prefix: string, ns: string): Promise<void> {
  if (!ownsNamespace(prefix, ns)) throw new Error(`refusing to create ${ns} outside ${prefix}`);
  // recorded before creation: a failure right after still gets cleaned up
  await recordNamespace(prefix, ns);
  await run(['ip', 'netns', 'add', ns]);
  // IPv6 off before any device exists, so new devices inherit it from `default`
  await runInNs(ns, [
    'sysctl',
    '-q',
    '-w',
    'net.ipv6.conf.all.disable_ipv6=1',
    'net.ipv6.conf.default.disable_ipv6=1',
  ]);
  await ipn(ns, ['link', 'set', 'lo', 'up']);
}

/** `ethtool -K DEV tx off`: NATed TCP on the userspace datapath fails with offloaded checksums. */
export async function txOff(ns: string, dev: string): Promise<void> {
  await runInNs(ns, ['ethtool', '-K', dev, 'tx', 'off']);
}

/**
 * A veth pair created inside `ns` with its peer placed straight into `peerNs`, so no end ever
 * exists in the root namespace.
 */
async function addVeth(ns: string, name: string, peerNs: string, peerName: string): Promise<void> {
  await ipn(ns, ['link', 'add', name, 'type', 'veth', 'peer', 'name', peerName, 'netns', peerNs]);
  await txOff(ns, name);
  await txOff(peerNs, peerName);
}

export async function labUp(spec: LabSpec, opts: LabUpOptions = {}): Promise<Lab> {
  validateSpec(spec);
  const prefix = spec.prefix;
  await labDown(prefix);
  const dir = labDir(prefix);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'spec.json'), JSON.stringify(spec, null, 2) + '\n');
  const lab: Lab = {
    spec,
    dir,
    underlayNs: underlayNs(prefix),
    externalNs: externalNs(prefix),
    nodes: [],
  };
  try {
    const len = prefixLength(spec.underlayCIDR);
    const ul = lab.underlayNs;
    await addNamespace(prefix, ul);
    await ipn(ul, ['link', 'add', UNDERLAY_BRIDGE, 'type', 'bridge']);
    await ipn(ul, ['link', 'set', UNDERLAY_BRIDGE, 'up']);

    const ext = lab.externalNs;
    await addNamespace(prefix, ext);
    await addVeth(ul, 'x-ext', ext, 'eth0');
    await ipn(ul, ['link', 'set', 'x-ext', 'master', UNDERLAY_BRIDGE, 'up']);
    await ipn(ext, ['addr', 'add', `${spec.external.ip}/${len}`, 'dev', 'eth0']);
    await ipn(ext, ['link', 'set', 'eth0', 'up']);

    for (const [i, node] of spec.nodes.entries()) {
      const handle = await nodeUp(spec, node, i, len);
      lab.nodes.push(handle);
      await opts.afterNode?.(handle);
    }
    return lab;
  } catch (e) {
    const report = await labDown(prefix);
    const note = report.survivors.length ? ` (pids still alive: ${report.survivors})` : '';
    throw new Error(`lab up failed, cleaned up${note}: ${(e as Error).message}`, { cause: e });
  }
}

async function nodeUp(spec: LabSpec, node: LabNode, index: number, len: number) {
  const prefix = spec.prefix;
  const ns = nodeNs(prefix, node.nodeName);
  const ul = underlayNs(prefix);
  const bridge = spec.bridge ?? 'br-int';
  const gw = spec.gatewayInterface ?? 'gw0';
  const localMAC = node.localMAC ?? nodeMAC(index, 0);
  await addNamespace(prefix, ns);

  const ulSide = `u-${index}`;
  await addVeth(ul, ulSide, ns, UPLINK_DEVICE);
  await ipn(ul, ['link', 'set', ulSide, 'master', UNDERLAY_BRIDGE, 'up']);
  // The userspace datapath reads ports with packet sockets, so the node's own kernel stack
  // sees their frames too. A MAC of its own and no ARP keep that stack from answering on the
  // uplink (and pod veths): the node is reachable only through LOCAL, as on a Windows node.
  await ipn(ns, ['link', 'set', UPLINK_DEVICE, 'address', nodeMAC(index, 1), 'arp', 'off', 'up']);

  const ovs = new OvsInstance({ prefix, node: node.nodeName, ns, bridge });
  await ovs.start();
  await ovs.addBridge({ hwaddr: localMAC });
  await ovs.addPort(UPLINK_DEVICE, node.uplinkPort);
  await ovs.addPort(gw, node.gatewayPort, [
    'type=internal',
    `mac=${JSON.stringify(node.gatewayMAC)}`,
  ]);

  // The node's own addresses live on the bridge's LOCAL port, as on a Windows node.
  await ipn(ns, ['link', 'set', bridge, 'up']);
  for (const ip of node.nodeIPs) await ipn(ns, ['addr', 'add', `${ip}/${len}`, 'dev', bridge]);
  await txOff(ns, bridge);

  await ipn(ns, ['link', 'set', gw, 'address', node.gatewayMAC, 'up']);
  await ipn(ns, ['addr', 'add', `${node.gatewayIP}/${prefixLength(node.podCIDR)}`, 'dev', gw]);
  await txOff(ns, gw);

  const handle: LabNodeHandle = { spec: node, ns, ovs, uplinkDevice: UPLINK_DEVICE, pods: [] };
  for (const [i, pod] of node.localPods.entries()) {
    if (pod.hostNetwork) {
      handle.pods.push({ pod, ns });
      continue;
    }
    const pns = podNs(prefix, node.nodeName, i);
    const dev = podHostDevice(pod.ofport);
    await addNamespace(prefix, pns);
    await addVeth(ns, dev, pns, 'eth0');
    await ipn(pns, ['link', 'set', 'eth0', 'address', pod.mac, 'up']);
    await ipn(pns, ['addr', 'add', `${pod.ip}/${prefixLength(node.podCIDR)}`, 'dev', 'eth0']);
    await ipn(pns, ['route', 'add', 'default', 'via', node.gatewayIP, 'dev', 'eth0']);
    await ipn(ns, ['link', 'set', dev, 'arp', 'off', 'up']);
    await ovs.addPort(dev, pod.ofport, podExternalIds(pod));
    handle.pods.push({ pod, ns: pns, hostDevice: dev });
  }
  return handle;
}

/** OVSDB Interface external_ids identifying a pod's port (the contract in docs/lab.md). */
export const POD_EXTERNAL_IDS = {
  namespace: 'svcflow-pod-namespace',
  name: 'svcflow-pod-name',
  ip: 'svcflow-pod-ip',
  mac: 'svcflow-pod-mac',
} as const;

function podExternalIds(pod: LocalPod): string[] {
  // JSON quoting is OVSDB's string syntax; values with ':' or '/' need it
  const kv = (k: string, v: string) => `external_ids:${k}=${JSON.stringify(v)}`;
  return [
    kv(POD_EXTERNAL_IDS.namespace, pod.namespace),
    kv(POD_EXTERNAL_IDS.name, pod.name),
    kv(POD_EXTERNAL_IDS.ip, pod.ip),
    kv(POD_EXTERNAL_IDS.mac, pod.mac),
  ];
}

/** Namespaces that exist now and carry the lab prefix. */
export async function labNamespaces(prefix: string): Promise<string[]> {
  validatePrefix(prefix);
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((ns): ns is string => !!ns && ownsNamespace(prefix, ns));
}

/**
 * Remove a lab: kill its recorded pids (only while their names still match), then anything
 * still running inside a prefixed namespace, delete those namespaces and the run directory.
 * Safe to call when nothing exists.
 */
export async function labDown(prefix: string): Promise<LabDownReport> {
  validatePrefix(prefix);
  const report: LabDownReport = { killed: [], namespaces: [], survivors: [] };
  const state = await readState(prefix);
  for (const p of state?.processes ?? []) {
    if (await killPid(p.pid, p.comm)) report.killed.push(p.pid);
    else report.survivors.push(p.pid);
  }
  const namespaces = await labNamespaces(prefix);
  for (const ns of namespaces) {
    const r = await run(['ip', 'netns', 'pids', ns], { allowFailure: true });
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (report.killed.includes(pid) || report.survivors.includes(pid)) continue;
      if (await killPid(pid)) report.killed.push(pid);
      else report.survivors.push(pid);
    }
  }
  for (const ns of namespaces) {
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    report.namespaces.push(ns);
  }
  await rm(labDir(prefix), { recursive: true, force: true });
  return report;
}

/** Find the handle of a pod by namespace/name. */
export function findPod(lab: Lab, namespace: string, name: string): LabPodHandle {
  for (const n of lab.nodes) {
    for (const p of n.pods) if (p.pod.namespace === namespace && p.pod.name === name) return p;
  }
  throw new Error(`no pod ${namespace}/${name} in lab ${lab.spec.prefix}`);
}
