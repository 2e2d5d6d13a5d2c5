// Windows host backend: the same HostPlan as on Linux, applied with PowerShell's NetTCPIP,
// NetAdapter and NetNat cmdlets. It reads the host once (as JSON), computes the statements that
// close the gap (a pure function), and runs them as one script. Every value in a script is a
// single-quoted PowerShell literal, so names from the cluster can never become code.
//
// Differences from Linux, by necessity:
// - rp_filter, accept_local, send_redirects and route_localnet have no Windows equivalent and are
//   not touched; forwarding is Set-NetIPInterface -Forwarding Enabled.
// - Windows routes have no owner marker; ours carry route metric 212 and only those are removed.
// - Preferred source addresses are not set (Windows picks the interface address).
// - Host-originated NodePort traffic is redirected with NetNat static mappings (node IP:port →
//   virtual IP:port) on a NetNat named "svcflow"; 127.0.0.1 cannot be mapped that way and is
//   skipped.

import { execFile } from 'node:child_process';

import type { HostBackend, HostChange } from '../agent/host.js';
import type { HostPlan } from './types.js';

export const ROUTE_METRIC = 212;
export const NAT_NAME = 'svcflow';

export interface PowerShellRunner {
  run(script: string): Promise<string>;
}

/** powershell.exe with the script as one argument: no shell in between, no profile. */
export const powershell: PowerShellRunner = {
  run: (script) =>
    new Promise((resolve, reject) => {
      execFile(
        'powershell.exe',
        ['-NoProfile', '-NonInteractive', '-Command', script],
        { maxBuffer: 64 * 1024 * 1024, timeout: 120_000, windowsHide: true },
        (err, stdout, stderr) =>
          err ? reject(new Error(`powershell: ${err.message}\n${stderr}`)) : resolve(stdout),
      );
    }),
};

/**
 * A single-quoted PowerShell literal. Inside single quotes only the quote is special; PowerShell
 * also accepts the typographic quotes U+2018..U+201B as single quotes, so those are doubled too.
 */
export function psLiteral(value: string | number): string {
  return `'${String(value).replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

// ---------- observing ----------

export const OBSERVE_SCRIPT = [
  "$ErrorActionPreference = 'Stop'",
  '$r = [ordered]@{}',
  '$r.routes = @(Get-NetRoute -AddressFamily IPv4 -ErrorAction SilentlyContinue | Select-Object DestinationPrefix,InterfaceAlias,NextHop,RouteMetric)',
  '$r.neighbors = @(Get-NetNeighbor -AddressFamily IPv4 -ErrorAction SilentlyContinue | Select-Object IPAddress,InterfaceAlias,LinkLayerAddress)',
  "$r.interfaces = @(Get-NetIPInterface -AddressFamily IPv4 -ErrorAction SilentlyContinue | Select-Object InterfaceAlias,@{n='Forwarding';e={[string]$_.Forwarding}})",
  "$r.offload = @(Get-NetAdapterChecksumOffload -ErrorAction SilentlyContinue | Select-Object Name,@{n='TcpIPv4';e={[string]$_.TcpIPv4Enabled}},@{n='UdpIPv4';e={[string]$_.UdpIPv4Enabled}},@{n='IpIPv4';e={[string]$_.IpIPv4Enabled}})",
  '$r.nats = @(Get-NetNat -ErrorAction SilentlyContinue | Select-Object Name)',
  "$r.mappings = @(Get-NetNatStaticMapping -ErrorAction SilentlyContinue | Select-Object NatName,@{n='Protocol';e={[string]$_.Protocol}},ExternalIPAddress,ExternalPort,InternalIPAddress,InternalPort)",
  '$r | ConvertTo-Json -Depth 4 -Compress',
].join('\n');

export interface WindowsObserved {
  routes: {
    DestinationPrefix: string;
    InterfaceAlias: string;
    NextHop: string;
    RouteMetric?: number;
  }[];
  neighbors: { IPAddress: string; InterfaceAlias: string; LinkLayerAddress: string }[];
  interfaces: { InterfaceAlias: string; Forwarding: string }[];
  offload: { Name: string; TcpIPv4: string; UdpIPv4: string; IpIPv4: string }[];
  nats: { Name: string }[];
  mappings: {
    NatName: string;
    Protocol: string;
    ExternalIPAddress: string;
    ExternalPort: number;
    InternalIPAddress: string;
    InternalPort: number;
  }[];
}

type Obj = Record<string, unknown>;

/** ConvertTo-Json prints one-element arrays as a bare object and empty ones as null: undo that. */
function list(v: unknown): Obj[] {
  if (v === null || v === undefined) return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.filter((x): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x));
}

const s = (v: unknown) =>
  typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
const n = (v: unknown) => (typeof v === 'number' ? v : Number(v));

export function parseObserved(text: string): WindowsObserved {
  let d: Obj;
  try {
    d = JSON.parse(text.replace(/^\uFEFF/, '')) as Obj;
  } catch {
    throw new Error('host observation is not JSON');
  }
  if (typeof d !== 'object' || d === null) throw new Error('host observation is not an object');
  return {
    routes: list(d.routes).map((r) => ({
      DestinationPrefix: s(r.DestinationPrefix),
      InterfaceAlias: s(r.InterfaceAlias),
      NextHop: s(r.NextHop),
      RouteMetric: n(r.RouteMetric),
    })),
    neighbors: list(d.neighbors).map((r) => ({
      IPAddress: s(r.IPAddress),
      InterfaceAlias: s(r.InterfaceAlias),
      LinkLayerAddress: s(r.LinkLayerAddress),
    })),
    interfaces: list(d.interfaces).map((r) => ({
      InterfaceAlias: s(r.InterfaceAlias),
      Forwarding: s(r.Forwarding),
    })),
    offload: list(d.offload).map((r) => ({
      Name: s(r.Name),
      TcpIPv4: s(r.TcpIPv4),
      UdpIPv4: s(r.UdpIPv4),
      IpIPv4: s(r.IpIPv4),
    })),
    nats: list(d.nats).map((r) => ({ Name: s(r.Name) })),
    mappings: list(d.mappings).map((r) => ({
      NatName: s(r.NatName),
      Protocol: s(r.Protocol),
      ExternalIPAddress: s(r.ExternalIPAddress),
      ExternalPort: n(r.ExternalPort),
      InternalIPAddress: s(r.InternalIPAddress),
      InternalPort: n(r.InternalPort),
    })),
  };
}

// ---------- planning (pure) ----------

export interface WindowsCommand {
  script: string;
  why: string;
}

const ON_LINK = '0.0.0.0';
const winMac = (mac: string) => mac.toUpperCase().replace(/:/g, '-');
/** TxEnabled or RxTxEnabled: transmit offload is on. */
const txOn = (v: string) => v === 'TxEnabled' || v === 'RxTxEnabled' || v === '1' || v === '3';
const forwardingOn = (v: string) => v === 'Enabled' || v === '1';
const dstOf = (d: string) => (d.includes('/') ? d : `${d}/32`);

export function planWindowsCommands(plan: HostPlan, o: WindowsObserved): WindowsCommand[] {
  const out: WindowsCommand[] = [];
  const L = psLiteral;

  // routes
  const wanted = new Set(plan.routes.map((r) => `${dstOf(r.destination)}|${r.device}`));
  for (const r of plan.routes) {
    const dst = dstOf(r.destination);
    const hop = r.via ?? ON_LINK;
    const have = o.routes.filter(
      (x) => x.DestinationPrefix === dst && x.InterfaceAlias === r.device,
    );
    if (have.some((x) => x.NextHop === hop)) continue;
    for (const x of have.filter((y) => y.RouteMetric === ROUTE_METRIC))
      out.push({
        script: `Remove-NetRoute -DestinationPrefix ${L(dst)} -InterfaceAlias ${L(r.device)} -NextHop ${L(x.NextHop)} -Confirm:$false`,
        why: 'next hop changed',
      });
    out.push({
      script: `New-NetRoute -DestinationPrefix ${L(dst)} -InterfaceAlias ${L(r.device)} -NextHop ${L(hop)} -RouteMetric ${L(ROUTE_METRIC)} -PolicyStore ${L('ActiveStore')}`,
      why: r.why,
    });
  }
  for (const x of o.routes)
    if (x.RouteMetric === ROUTE_METRIC && !wanted.has(`${x.DestinationPrefix}|${x.InterfaceAlias}`))
      out.push({
        script: `Remove-NetRoute -DestinationPrefix ${L(x.DestinationPrefix)} -InterfaceAlias ${L(x.InterfaceAlias)} -NextHop ${L(x.NextHop)} -Confirm:$false`,
        why: 'route installed by svcflow, no longer planned',
      });

  // neighbours
  for (const nb of plan.neighbors) {
    const have = o.neighbors.find((x) => x.IPAddress === nb.ip && x.InterfaceAlias === nb.device);
    if (have && winMac(have.LinkLayerAddress) === winMac(nb.mac)) continue;
    if (have)
      out.push({
        script: `Remove-NetNeighbor -IPAddress ${L(nb.ip)} -InterfaceAlias ${L(nb.device)} -Confirm:$false`,
        why: 'wrong MAC',
      });
    out.push({
      script: `New-NetNeighbor -IPAddress ${L(nb.ip)} -InterfaceAlias ${L(nb.device)} -LinkLayerAddress ${L(winMac(nb.mac))} -State ${L('Permanent')}`,
      why: nb.why,
    });
  }

  // interface switches that exist on Windows
  for (const i of plan.interfaces) {
    if (i.device === 'all') continue;
    if (i.forwarding) {
      const have = o.interfaces.find((x) => x.InterfaceAlias === i.device);
      if (!have || !forwardingOn(have.Forwarding))
        out.push({
          script: `Set-NetIPInterface -InterfaceAlias ${L(i.device)} -AddressFamily IPv4 -Forwarding Enabled`,
          why: i.why,
        });
    }
    if (i.txChecksumOffload === false) {
      const have = o.offload.find((x) => x.Name === i.device);
      if (!have || txOn(have.TcpIPv4) || txOn(have.UdpIPv4) || txOn(have.IpIPv4))
        out.push({
          script: `Disable-NetAdapterChecksumOffload -Name ${L(i.device)} -TcpIPv4 -UdpIPv4 -IpIPv4`,
          why: 'NATed checksums',
        });
    }
  }

  // host-originated NodePort: static NAT mappings node IP:port → virtual IP:port
  const wantMaps: { protocol: string; ext: string; port: number; to: string }[] = [];
  for (const r of plan.nodePortRedirects) {
    if (r.protocol === 'SCTP') continue; // NetNat maps TCP and UDP only
    for (const a of r.addresses)
      if (a !== '127.0.0.1')
        wantMaps.push({ protocol: r.protocol, ext: a, port: r.port, to: r.toIP });
  }
  const mapKey = (p: string, ext: string, port: number, to: string) =>
    `${p.toUpperCase()}|${ext}|${port}|${to}`;
  const haveMaps = o.mappings.filter((m) => m.NatName === NAT_NAME);
  const haveKeys = new Set(
    haveMaps.map((m) =>
      mapKey(m.Protocol, m.ExternalIPAddress, m.ExternalPort, m.InternalIPAddress),
    ),
  );
  const wantKeys = new Set(wantMaps.map((m) => mapKey(m.protocol, m.ext, m.port, m.to)));
  if (wantMaps.length > 0 && !o.nats.some((x) => x.Name === NAT_NAME)) {
    const vip = plan.nodePortRedirects[0].toIP;
    out.push({
      script: `New-NetNat -Name ${L(NAT_NAME)} -InternalIPInterfaceAddressPrefix ${L(`${vip}/32`)}`,
      why: 'NetNat instance for NodePort static mappings',
    });
  }
  for (const m of wantMaps) {
    if (haveKeys.has(mapKey(m.protocol, m.ext, m.port, m.to))) continue;
    out.push({
      script: `Add-NetNatStaticMapping -NatName ${L(NAT_NAME)} -Protocol ${L(m.protocol)} -ExternalIPAddress ${L(m.ext)} -ExternalPort ${L(m.port)} -InternalIPAddress ${L(m.to)} -InternalPort ${L(m.port)}`,
      why: 'host → NodePort through the virtual IP',
    });
  }
  for (const m of haveMaps)
    if (!wantKeys.has(mapKey(m.Protocol, m.ExternalIPAddress, m.ExternalPort, m.InternalIPAddress)))
      out.push({
        script: `Get-NetNatStaticMapping -NatName ${L(NAT_NAME)} | Where-Object { $_.ExternalIPAddress -eq ${L(m.ExternalIPAddress)} -and $_.ExternalPort -eq ${L(m.ExternalPort)} -and [string]$_.Protocol -eq ${L(m.Protocol)} } | Remove-NetNatStaticMapping -Confirm:$false`,
        why: 'NodePort mapping no longer planned',
      });
  return out;
}

/** One script for all changes: stop at the first error (the next sync observes again). */
export function applyScript(commands: WindowsCommand[]): string {
  return ["$ErrorActionPreference = 'Stop'", ...commands.map((c) => c.script)].join('\n');
}

export function windowsHostBackend(runner: PowerShellRunner = powershell): HostBackend {
  return {
    name: 'windows',
    async apply(plan: HostPlan): Promise<HostChange[]> {
      const observed = parseObserved(await runner.run(OBSERVE_SCRIPT));
      const commands = planWindowsCommands(plan, observed);
      if (commands.length > 0) await runner.run(applyScript(commands));
      return commands.map((c) => ({ command: c.script, why: c.why }));
    },
  };
}
