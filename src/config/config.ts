// The svcflow config document: defaults, parsing and validation.
import { isIPv4, isMAC, parseCidr } from '../net/ipv4.js';
import { InputError } from '../cluster/load.js';
import type { NodeOverrides, SvcflowConfig } from './types.js';

export const DEFAULT_CONFIG: Readonly<SvcflowConfig> = Object.freeze({
  bridge: 'br-int',
  gatewayInterface: 'gw0',
  uplinkInterface: 'uplink0',
  gatewayPort: 2,
  uplinkPort: 3,
  virtualIP: '169.254.169.110',
  hostReturnIP: '169.254.169.111',
  virtualMAC: 'aa:bb:cc:dd:ee:ff',
  ctZones: { nodePortDnat: 52100, snat: 52200, service: 65500 },
  snatPortRange: [10000, 32767] as [number, number],
  encapMode: 'noEncap',
  nodePortAddresses: [],
  firstPodPort: 10,
  nodes: {},
});

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(field: string, reason: string): never {
  throw new InputError(`svcflow config: ${field} ${reason}`);
}

function ofport(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xfeff)
    bad(field, `must be an ofport 1-65279, got ${JSON.stringify(v)}`);
  return v;
}

function zone(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    bad(field, `must be a zone 1-65535, got ${JSON.stringify(v)}`);
  return v;
}

function ip(v: unknown, field: string): string {
  if (!isIPv4(v)) bad(field, `must be an IPv4 address, got ${JSON.stringify(v)}`);
  return v;
}

function mac(v: unknown, field: string): string {
  if (!isMAC(v)) bad(field, `must be a MAC address, got ${JSON.stringify(v)}`);
  return v.toLowerCase();
}

const KNOWN = new Set(['apiVersion', 'kind', 'metadata', ...Object.keys(DEFAULT_CONFIG)]);

/** Merge config documents over the defaults; later documents win field by field. */
export function parseConfig(docs: Obj[]): SvcflowConfig {
  const cfg: SvcflowConfig = structuredClone(DEFAULT_CONFIG) as SvcflowConfig;
  for (const d of docs) {
    for (const k of Object.keys(d)) if (!KNOWN.has(k)) bad(k, 'is not a known setting');
    if (d.bridge !== undefined) cfg.bridge = String(d.bridge);
    if (d.gatewayInterface !== undefined) cfg.gatewayInterface = String(d.gatewayInterface);
    if (d.uplinkInterface !== undefined) cfg.uplinkInterface = String(d.uplinkInterface);
    if (d.gatewayPort !== undefined) cfg.gatewayPort = ofport(d.gatewayPort, 'gatewayPort');
    if (d.uplinkPort !== undefined) cfg.uplinkPort = ofport(d.uplinkPort, 'uplinkPort');
    if (d.firstPodPort !== undefined) cfg.firstPodPort = ofport(d.firstPodPort, 'firstPodPort');
    if (d.virtualIP !== undefined) cfg.virtualIP = ip(d.virtualIP, 'virtualIP');
    if (d.hostReturnIP !== undefined) cfg.hostReturnIP = ip(d.hostReturnIP, 'hostReturnIP');
    if (d.virtualMAC !== undefined) cfg.virtualMAC = mac(d.virtualMAC, 'virtualMAC');
    if (d.encapMode !== undefined && d.encapMode !== 'noEncap')
      bad(
        'encapMode',
        `${JSON.stringify(d.encapMode)} is not supported; only noEncap is implemented`,
      );
    if (d.ctZones !== undefined) {
      if (!isObj(d.ctZones)) bad('ctZones', 'must be a mapping');
      for (const [k, v] of Object.entries(d.ctZones)) {
        if (!(k in cfg.ctZones))
          bad(`ctZones.${k}`, 'is not a known zone (nodePortDnat, snat, service)');
        cfg.ctZones[k as keyof typeof cfg.ctZones] = zone(v, `ctZones.${k}`);
      }
    }
    if (d.snatPortRange !== undefined) {
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(String(d.snatPortRange));
      const lo = m ? Number(m[1]) : NaN;
      const hi = m ? Number(m[2]) : NaN;
      if (!(lo >= 1 && hi <= 65535 && lo <= hi))
        bad(
          'snatPortRange',
          `must be "LOW-HIGH" within 1-65535, got ${JSON.stringify(d.snatPortRange)}`,
        );
      cfg.snatPortRange = [lo, hi];
    }
    if (d.nodePortAddresses !== undefined) {
      if (!Array.isArray(d.nodePortAddresses)) bad('nodePortAddresses', 'must be a list');
      cfg.nodePortAddresses = d.nodePortAddresses.map((a, i) => {
        if (a === 'primary' || parseCidr(a)) return a as string;
        bad(`nodePortAddresses[${i}]`, `must be a CIDR or "primary", got ${JSON.stringify(a)}`);
      });
    }
    if (d.nodes !== undefined) {
      if (!isObj(d.nodes)) bad('nodes', 'must be a mapping of node name to settings');
      for (const [name, raw] of Object.entries(d.nodes)) {
        if (!isObj(raw)) bad(`nodes.${name}`, 'must be a mapping');
        const o: NodeOverrides = cfg.nodes[name] ?? {};
        if (raw.gatewayMAC !== undefined)
          o.gatewayMAC = mac(raw.gatewayMAC, `nodes.${name}.gatewayMAC`);
        if (raw.pods !== undefined) {
          if (!isObj(raw.pods)) bad(`nodes.${name}.pods`, 'must be a mapping of namespace/name');
          o.pods = { ...(o.pods ?? {}) };
          for (const [pod, pv] of Object.entries(raw.pods)) {
            if (!isObj(pv)) bad(`nodes.${name}.pods.${pod}`, 'must be a mapping');
            o.pods[pod] = {
              ofport:
                pv.ofport === undefined
                  ? undefined
                  : ofport(pv.ofport, `nodes.${name}.pods.${pod}.ofport`),
              mac: pv.mac === undefined ? undefined : mac(pv.mac, `nodes.${name}.pods.${pod}.mac`),
            };
          }
        }
        cfg.nodes[name] = o;
      }
    }
  }
  const zones = Object.values(cfg.ctZones);
  if (new Set(zones).size !== zones.length) bad('ctZones', 'must be three different zones');
  if (new Set([cfg.gatewayPort, cfg.uplinkPort]).size !== 2)
    bad('gatewayPort', 'and uplinkPort must differ');
  return cfg;
}
