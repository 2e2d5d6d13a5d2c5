// svcflow trace: every source kind, destinations, verdicts, and the CLI's output and exit codes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { loadInputs } from '../../src/cli/context.js';
import { buildClusterModel, ClusterSim, parseDestination } from '../../src/sim/cluster.js';
import { runConnection } from '../../src/sim/connection.js';
import { connectionText, stepVerdict } from '../../src/sim/describe.js';

const loaded = loadInputs();
const model = buildClusterModel(loaded.state, loaded.config);

function trace(src: string, dst: string, connection = true, bucket?: number) {
  const sim = new ClusterSim(model);
  return runConnection(sim, sim.place(src), parseDestination(model, dst), {
    single: !connection,
    chooseBucket: bucket === undefined ? undefined : () => bucket,
  });
}

const ok = (c: ReturnType<typeof trace>) =>
  !c.stopped && c.steps.every((s) => s.journey.verdict === 'delivered');

describe('trace sources', () => {
  it('pod:NS/NAME → service, whole TCP connection', () => {
    const c = trace('pod:default/client-a', 'service:default/web');
    assert.ok(ok(c), c.stopped);
    assert.equal(c.steps.length, 8);
    assert.equal(c.serverSaw!.ipSrc, '10.244.1.20');
    // the client's view of every reply is the ClusterIP
    for (const s of c.steps.filter((x) => x.direction === 'reply'))
      assert.equal(s.journey.arrivals[0].packet.ipSrc, '10.96.0.10');
  });

  it('host:NODE → ClusterIP is SNATed to the gateway IP, ARP answered by the responder', () => {
    const c = trace('host:node-a', 'service:default/web:http', true, 0);
    assert.ok(ok(c), c.stopped);
    assert.equal(c.serverSaw!.ipSrc, '10.244.1.1');
    const text = connectionText(model, c);
    assert.match(text, /ARP host:node-a on gw0: who-has 10\.96\.0\.10 → aa:bb:cc:dd:ee:ff/);
  });

  it('external:IP → nodeport, UDP request and reply', () => {
    const c = trace('external:192.168.77.100', 'nodeport:node-b/default/echo-udp');
    assert.ok(ok(c), c.stopped);
    assert.equal(c.steps.length, 2);
    assert.equal(c.serverSaw!.ipSrc, '10.244.2.1');
    const back = c.steps[1].journey.arrivals[0].packet;
    assert.deepEqual([back.ipSrc, back.tpSrc], ['192.168.77.12', 30053]);
  });

  it('a raw IP names a pod, a node host, or a new outside station', () => {
    const sim = new ClusterSim(model);
    assert.deepEqual(sim.place('10.244.2.20'), { kind: 'pod', node: 'node-b', ip: '10.244.2.20' });
    assert.deepEqual(sim.place('192.168.77.22'), { kind: 'host', node: 'node-b' });
    assert.deepEqual(sim.place('192.168.77.150'), {
      kind: 'station',
      name: 'external:192.168.77.150',
    });
    const c = trace('192.168.77.150', '192.168.77.11:30081/tcp');
    assert.ok(ok(c), c.stopped);
    assert.equal(c.serverSaw!.ipSrc, '192.168.77.150');
    assert.throws(() => sim.place('10.9.9.9'), /not on the underlay/);
  });

  it('a drop says where and why', () => {
    const c = trace('pod:default/client-a', 'service:default/empty', false);
    assert.equal(c.steps[0].journey.verdict, 'dropped');
    assert.match(
      stepVerdict(model, c.steps[0].journey),
      /node-a: table 41 ServiceLB: .*actions=drop/,
    );
  });

  it('destinations: IP:PORT/PROTO, service port by name or number, nodeport', () => {
    assert.deepEqual(parseDestination(model, '10.96.0.13:53/udp'), {
      ip: '10.96.0.13',
      port: 53,
      protocol: 'UDP',
    });
    assert.deepEqual(parseDestination(model, 'service:default/multi:dns'), {
      ip: '10.96.0.13',
      port: 53,
      protocol: 'UDP',
    });
    assert.equal(parseDestination(model, 'service:default/multi:80').protocol, 'TCP');
    assert.deepEqual(parseDestination(model, 'nodeport:node-a/default/web'), {
      ip: '192.168.77.11',
      port: 30080,
      protocol: 'TCP',
    });
    assert.throws(() => parseDestination(model, 'service:default/nope'), /no Service/);
  });
});

describe('trace and verify on the command line', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      encoding: 'utf8',
    });

  it('trace --json, exit 0 when delivered', () => {
    const r = cli('trace', 'pod:default/client-a', 'service:default/web', '--connection', '--json');
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.packets.length, 8);
    assert.match(j.packets[0].verdict, /^delivered to default\/web-/);
    assert.ok(j.packets[0].journey.hops.some((h: { kind: string }) => h.kind === 'bridge'));
  });

  it('trace exits 1 on a drop and 2 on a bad argument', () => {
    const drop = cli('trace', 'pod:default/client-a', 'service:default/empty');
    assert.equal(drop.status, 1);
    assert.match(drop.stdout, /=> dropped: node-a: table 41 ServiceLB/);
    const bad = cli('trace', 'pod:default/nobody', 'service:default/web');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /no pod default\/nobody/);
  });

  it('verify passes on the bundled example', () => {
    const r = cli('verify');
    assert.equal(r.status, 0, r.stdout.slice(-2000));
    assert.match(r.stdout, /(\d+)\/\1 path runs pass/);
  });
});
