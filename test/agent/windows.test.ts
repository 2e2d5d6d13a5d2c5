// The Windows host backend's command builder, pure: exact statements for given observed states,
// idempotence, and names that would be code in any other quoting.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { HostPlan } from '../../src/host/types.js';
import {
  OBSERVE_SCRIPT,
  applyScript,
  parseObserved,
  planWindowsCommands,
  psLiteral,
  windowsHostBackend,
  type PowerShellRunner,
  type WindowsObserved,
} from '../../src/host/windows.js';

/** FakePowerShell: answers the observation script with canned JSON and records every script. */
class FakePowerShell implements PowerShellRunner {
  scripts: string[] = [];
  constructor(private observed: string) {}
  async run(script: string): Promise<string> {
    this.scripts.push(script);
    return script === OBSERVE_SCRIPT ? this.observed : '';
  }
}

function plan(gw = 'gw0', bridge = 'br-int'): HostPlan {
  return {
    nodeName: 'n',
    routes: [
      { destination: '10.244.2.0/24', device: bridge, via: '192.168.1.12', why: 'peer pods' },
      { destination: '10.96.0.10/32', device: gw, why: 'ClusterIP' },
    ],
    neighbors: [
      { device: gw, ip: '169.254.169.110', mac: 'aa:bb:cc:dd:ee:ff', why: 'virtual next hop' },
    ],
    interfaces: [
      { device: 'all', rpFilter: 0, why: 'linux only' },
      { device: gw, forwarding: true, txChecksumOffload: false, why: 'gateway' },
    ],
    nodePortRedirects: [
      {
        protocol: 'TCP',
        port: 30080,
        addresses: ['192.168.1.11', '127.0.0.1'],
        toIP: '169.254.169.110',
        snatIP: '10.244.1.1',
        device: gw,
      },
    ],
  };
}

const empty: WindowsObserved = {
  routes: [],
  neighbors: [],
  interfaces: [],
  offload: [],
  nats: [],
  mappings: [],
};

test('psLiteral: single quotes only, every quote form doubled', () => {
  assert.equal(psLiteral('gw0'), "'gw0'");
  assert.equal(psLiteral("a'b"), "'a''b'");
  assert.equal(
    psLiteral('$(Remove-Item C:\\ -Recurse); `n"x"'),
    '\'$(Remove-Item C:\\ -Recurse); `n"x"\'',
  );
  assert.equal(psLiteral('a\u2019b'), "'a\u2019\u2019b'");
  assert.equal(psLiteral(30080), "'30080'");
});

test('from an empty host: every change, exactly', () => {
  const cmds = planWindowsCommands(plan(), empty).map((c) => c.script);
  assert.deepEqual(cmds, [
    "New-NetRoute -DestinationPrefix '10.244.2.0/24' -InterfaceAlias 'br-int' -NextHop '192.168.1.12' -RouteMetric '212' -PolicyStore 'ActiveStore'",
    "New-NetRoute -DestinationPrefix '10.96.0.10/32' -InterfaceAlias 'gw0' -NextHop '0.0.0.0' -RouteMetric '212' -PolicyStore 'ActiveStore'",
    "New-NetNeighbor -IPAddress '169.254.169.110' -InterfaceAlias 'gw0' -LinkLayerAddress 'AA-BB-CC-DD-EE-FF' -State 'Permanent'",
    "Set-NetIPInterface -InterfaceAlias 'gw0' -AddressFamily IPv4 -Forwarding Enabled",
    "Disable-NetAdapterChecksumOffload -Name 'gw0' -TcpIPv4 -UdpIPv4 -IpIPv4",
    "New-NetNat -Name 'svcflow' -InternalIPInterfaceAddressPrefix '169.254.169.110/32'",
    "Add-NetNatStaticMapping -NatName 'svcflow' -Protocol 'TCP' -ExternalIPAddress '192.168.1.11' -ExternalPort '30080' -InternalIPAddress '169.254.169.110' -InternalPort '30080'",
  ]);
});

test('a host that already matches needs nothing; stale svcflow routes and mappings go', () => {
  const observed = parseObserved(
    JSON.stringify({
      routes: [
        {
          DestinationPrefix: '10.244.2.0/24',
          InterfaceAlias: 'br-int',
          NextHop: '192.168.1.12',
          RouteMetric: 212,
        },
        {
          DestinationPrefix: '10.96.0.10/32',
          InterfaceAlias: 'gw0',
          NextHop: '0.0.0.0',
          RouteMetric: 212,
        },
        {
          DestinationPrefix: '10.96.0.99/32',
          InterfaceAlias: 'gw0',
          NextHop: '0.0.0.0',
          RouteMetric: 212,
        },
        {
          DestinationPrefix: '0.0.0.0/0',
          InterfaceAlias: 'Ethernet',
          NextHop: '192.168.1.1',
          RouteMetric: 0,
        },
      ],
      // ConvertTo-Json prints a one-element array as a bare object
      neighbors: {
        IPAddress: '169.254.169.110',
        InterfaceAlias: 'gw0',
        LinkLayerAddress: 'AA-BB-CC-DD-EE-FF',
      },
      interfaces: [{ InterfaceAlias: 'gw0', Forwarding: 'Enabled' }],
      offload: [{ Name: 'gw0', TcpIPv4: 'Disabled', UdpIPv4: 'RxEnabled', IpIPv4: 'Disabled' }],
      nats: { Name: 'svcflow' },
      mappings: [
        {
          NatName: 'svcflow',
          Protocol: 'TCP',
          ExternalIPAddress: '192.168.1.11',
          ExternalPort: 30080,
          InternalIPAddress: '169.254.169.110',
          InternalPort: 30080,
        },
        {
          NatName: 'svcflow',
          Protocol: 'UDP',
          ExternalIPAddress: '192.168.1.11',
          ExternalPort: 30053,
          InternalIPAddress: '169.254.169.110',
          InternalPort: 30053,
        },
      ],
    }),
  );
  assert.deepEqual(
    planWindowsCommands(plan(), observed).map((c) => c.script),
    [
      "Remove-NetRoute -DestinationPrefix '10.96.0.99/32' -InterfaceAlias 'gw0' -NextHop '0.0.0.0' -Confirm:$false",
      "Get-NetNatStaticMapping -NatName 'svcflow' | Where-Object { $_.ExternalIPAddress -eq '192.168.1.11' -and $_.ExternalPort -eq '30053' -and [string]$_.Protocol -eq 'UDP' } | Remove-NetNatStaticMapping -Confirm:$false",
    ],
  );
});

test('wrong MAC and changed next hop are replaced, other owners are left alone', () => {
  const observed: WindowsObserved = {
    ...empty,
    routes: [
      {
        DestinationPrefix: '10.244.2.0/24',
        InterfaceAlias: 'br-int',
        NextHop: '192.168.1.99',
        RouteMetric: 212,
      },
      {
        DestinationPrefix: '10.96.0.10/32',
        InterfaceAlias: 'gw0',
        NextHop: '10.0.0.1',
        RouteMetric: 5,
      },
    ],
    neighbors: [
      {
        IPAddress: '169.254.169.110',
        InterfaceAlias: 'gw0',
        LinkLayerAddress: '00-11-22-33-44-55',
      },
    ],
    interfaces: [{ InterfaceAlias: 'gw0', Forwarding: 'Enabled' }],
    offload: [{ Name: 'gw0', TcpIPv4: 'Disabled', UdpIPv4: 'Disabled', IpIPv4: 'Disabled' }],
  };
  const cmds = planWindowsCommands({ ...plan(), nodePortRedirects: [] }, observed).map(
    (c) => c.script,
  );
  assert.deepEqual(cmds, [
    "Remove-NetRoute -DestinationPrefix '10.244.2.0/24' -InterfaceAlias 'br-int' -NextHop '192.168.1.99' -Confirm:$false",
    "New-NetRoute -DestinationPrefix '10.244.2.0/24' -InterfaceAlias 'br-int' -NextHop '192.168.1.12' -RouteMetric '212' -PolicyStore 'ActiveStore'",
    "New-NetRoute -DestinationPrefix '10.96.0.10/32' -InterfaceAlias 'gw0' -NextHop '0.0.0.0' -RouteMetric '212' -PolicyStore 'ActiveStore'",
    "Remove-NetNeighbor -IPAddress '169.254.169.110' -InterfaceAlias 'gw0' -Confirm:$false",
    "New-NetNeighbor -IPAddress '169.254.169.110' -InterfaceAlias 'gw0' -LinkLayerAddress 'AA-BB-CC-DD-EE-FF' -State 'Permanent'",
  ]);
});

test('hostile interface names stay inside their literals', () => {
  const evil = "gw'; Remove-Item -Recurse C:\\ ; $x=`whoami`; '";
  const cmds = planWindowsCommands(plan(evil, 'br$(calc)'), empty).map((c) => c.script);
  assert.ok(
    cmds.includes(
      `Set-NetIPInterface -InterfaceAlias 'gw''; Remove-Item -Recurse C:\\ ; $x=\`whoami\`; ''' -AddressFamily IPv4 -Forwarding Enabled`,
    ),
  );
  assert.ok(cmds.some((c) => c.includes("-InterfaceAlias 'br$(calc)'")));
  // every quote in every statement is balanced: stripping the literals leaves no name text
  for (const c of cmds) {
    const outside = c.replace(
      /'(?:[^'\u2018\u2019\u201a\u201b]|['\u2018\u2019\u201a\u201b]{2})*'/g,
      "''",
    );
    assert.ok(
      !outside.includes('Remove-Item') && !outside.includes('calc') && !outside.includes('whoami'),
      outside,
    );
  }
});

test('backend: observe, then one apply script; a second run with a matching host does nothing', async () => {
  const ps = new FakePowerShell(
    JSON.stringify({
      routes: null,
      neighbors: null,
      interfaces: null,
      offload: null,
      nats: null,
      mappings: null,
    }),
  );
  const changes = await windowsHostBackend(ps).apply(plan());
  assert.equal(changes.length, 7);
  assert.equal(ps.scripts.length, 2);
  assert.equal(ps.scripts[0], OBSERVE_SCRIPT);
  assert.equal(ps.scripts[1], applyScript(planWindowsCommands(plan(), empty)));
  assert.ok(ps.scripts[1].startsWith("$ErrorActionPreference = 'Stop'\n"));

  const matching = new FakePowerShell(
    JSON.stringify({
      routes: [
        {
          DestinationPrefix: '10.244.2.0/24',
          InterfaceAlias: 'br-int',
          NextHop: '192.168.1.12',
          RouteMetric: 212,
        },
        {
          DestinationPrefix: '10.96.0.10/32',
          InterfaceAlias: 'gw0',
          NextHop: '0.0.0.0',
          RouteMetric: 212,
        },
      ],
      neighbors: [
        {
          IPAddress: '169.254.169.110',
          InterfaceAlias: 'gw0',
          LinkLayerAddress: 'aa-bb-cc-dd-ee-ff',
        },
      ],
      interfaces: [{ InterfaceAlias: 'gw0', Forwarding: '1' }],
      offload: [{ Name: 'gw0', TcpIPv4: '0', UdpIPv4: '2', IpIPv4: '0' }],
      nats: [{ Name: 'svcflow' }],
      mappings: [
        {
          NatName: 'svcflow',
          Protocol: 'Tcp',
          ExternalIPAddress: '192.168.1.11',
          ExternalPort: 30080,
          InternalIPAddress: '169.254.169.110',
          InternalPort: 30080,
        },
      ],
    }),
  );
  assert.deepEqual(await windowsHostBackend(matching).apply(plan()), []);
  assert.equal(matching.scripts.length, 1);
});

test('garbage observation output is an error, not a crash', () => {
  assert.throws(() => parseObserved('WARNING: something'), /not JSON/);
  assert.deepEqual(parseObserved('{}'), empty);
});
