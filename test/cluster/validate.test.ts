import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileText } from '../helpers/example.js';
import { renderProgram } from '../../src/openflow/render.js';

const NODE = `apiVersion: v1
kind: Node
metadata: {name: n1}
spec: {podCIDR: 10.1.0.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.9.1}]}
`;
const svc = (name: string, spec: string) => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: ${spec}
`;
const GOOD = svc('good', '{clusterIP: 10.96.1.1, ports: [{port: 80, protocol: TCP}]}');

const cases: [string, string, string][] = [
  [
    'port out of range',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{port: 70000}]}'),
    'spec.ports[0].port',
  ],
  [
    'bad protocol',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{port: 80, protocol: ICMP}]}'),
    'spec.ports[0].protocol',
  ],
  [
    'bad clusterIP',
    svc('bad', '{clusterIP: 10.96.1.300, ports: [{port: 80}]}'),
    'spec.clusterIPs[0]',
  ],
  [
    'duplicate port',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{name: a, port: 80}, {name: b, port: 80}]}'),
    'spec.ports[1].port',
  ],
  [
    'duplicate port name',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{name: a, port: 80}, {name: a, port: 81}]}'),
    'spec.ports[1].name',
  ],
  [
    'unnamed multi-port',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{port: 80}, {port: 81}]}'),
    'spec.ports[0].name',
  ],
  [
    'bad port name',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{name: "Web_1", port: 80}]}'),
    'spec.ports[0].name',
  ],
  [
    'bad targetPort',
    svc('bad', '{clusterIP: 10.96.1.2, ports: [{port: 80, targetPort: 0}]}'),
    'spec.ports[0].targetPort',
  ],
  [
    'bad policy',
    svc(
      'bad',
      '{type: NodePort, clusterIP: 10.96.1.2, externalTrafficPolicy: Sometimes, ports: [{port: 80, nodePort: 30001}]}',
    ),
    'spec.externalTrafficPolicy',
  ],
  [
    'nodePort clash',
    svc('bad', '{type: NodePort, clusterIP: 10.96.1.2, ports: [{port: 80, nodePort: 30000}]}') +
      svc('aaa', '{type: NodePort, clusterIP: 10.96.1.3, ports: [{port: 80, nodePort: 30000}]}'),
    'spec.ports[0].nodePort',
  ],
  [
    'affinity timeout',
    svc(
      'bad',
      '{clusterIP: 10.96.1.2, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: -1}}, ports: [{port: 80}]}',
    ),
    'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
  ],
  ['ports not a list', svc('bad', '{clusterIP: 10.96.1.2, ports: 80}'), 'spec.ports'],
  ['bad name', svc('Bad_Name', '{clusterIP: 10.96.1.2, ports: [{port: 80}]}'), 'metadata.name'],
];

for (const [what, bad, field] of cases) {
  test(`rejects a Service with ${what}, names the field, and still compiles the good one`, () => {
    const r = compileText(NODE + '---\n' + GOOD + bad, 'n1');
    const rej = r.rejections.find((x) => x.kind === 'Service' && x.field === field);
    assert.ok(rej, `no rejection on ${field}: ${JSON.stringify(r.rejections)}`);
    assert.equal(rej.namespace, 'default');
    assert.ok(rej.reason.length > 5);
    assert.match(renderProgram(r.compiled).flows, /nw_dst=10\.96\.1\.1,tp_dst=80/);
  });
}

test("a bad endpoint is dropped alone; the slice's good endpoints still serve", () => {
  const slice = `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: good-1, namespace: default, labels: {kubernetes.io/service-name: good}}
addressType: IPv4
ports: [{name: "", port: 8080, protocol: TCP}]
endpoints:
- {addresses: [10.1.0.5], nodeName: n1}
- {addresses: [not-an-ip], nodeName: n1}
- {addresses: [10.9.9.9], nodeName: n1}
`;
  const r = compileText(NODE + '---\n' + GOOD + slice, 'n1');
  assert.deepEqual(r.rejections.map((x) => x.field).sort(), [
    'endpoints[1].addresses[0]',
    'endpoints[2].addresses[0]',
  ]);
  const text = renderProgram(r.compiled);
  assert.match(text.flows, /nat\(dst=10\.1\.0\.5:8080\)/);
  assert.doesNotMatch(text.flows, /10\.9\.9\.9/);
});

test('an EndpointSlice without its service-name label and a Node with a bad pod CIDR are rejected', () => {
  const r = compileText(
    NODE +
      `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: orphan, namespace: default}
addressType: IPv4
endpoints: []
---
apiVersion: v1
kind: Node
metadata: {name: n2}
spec: {podCIDR: 10.2.0.0/33}
`,
    'n1',
  );
  assert.deepEqual(r.rejections.map((x) => `${x.kind}:${x.field}`).sort(), [
    'EndpointSlice:metadata.labels[kubernetes.io/service-name]',
    'Node:spec.podCIDR',
  ]);
});

/** A cluster file in a fresh temporary directory. */
function clusterFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'svcflow-')), 'c.yaml');
  writeFileSync(file, text);
  return file;
}

const cli = (args: string[], input?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    input,
  });

test('CLI: unreadable and non-YAML input → one line on stderr, exit 2, no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'svcflow-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'kind: [unclosed\n  - : :');
  for (const args of [
    ['compile', '--cluster', join(dir, 'missing.yaml')],
    ['compile', '--cluster', bad],
  ]) {
    const r = cli(args);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
  }
});

test('CLI: rejected objects go to stderr, flows to stdout, exit 0', () => {
  const file = clusterFile(
    NODE + '---\n' + GOOD + svc('bad', '{clusterIP: 10.96.1.2, ports: [{port: 0}]}'),
  );
  const r = cli(['compile', '--cluster', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^rejected Service default\/bad: spec\.ports\[0\]\.port: /m);
  assert.match(r.stdout, /nw_dst=10\.96\.1\.1/);
});

test('CLI: --help works on every command; json format parses', () => {
  for (const args of [['--help'], ['compile', '--help']]) assert.equal(cli(args).status, 0);
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'compile', '--format', 'json', '--node', 'node-b'],
    { encoding: 'utf8' },
  );
  const j = JSON.parse(out);
  assert.equal(j.node, 'node-b');
  assert.ok(j.flows.length > 50 && j.groups.length > 0 && j.hostPlan.routes.length > 0);
});

test('CLI: a Service with ClientIP affinity compiles with a warning naming it', () => {
  const file = clusterFile(
    NODE +
      '---\n' +
      svc('sticky', '{clusterIP: 10.96.1.9, sessionAffinity: ClientIP, ports: [{port: 80}]}'),
  );
  const r = cli(['compile', '--cluster', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /^warning: Service default\/sticky: sessionAffinity ClientIP is not implemented/m,
  );
  assert.match(r.stdout, /nw_dst=10\.96\.1\.9/);
});

test('CLI: external and load-balancer IPs are reported, the Service still compiles', () => {
  const file = clusterFile(
    NODE +
      '---\n' +
      svc(
        'edge',
        '{type: LoadBalancer, clusterIP: 10.96.1.8, externalIPs: [203.0.113.7], ports: [{port: 80, nodePort: 30007}]}',
      ) +
      'status: {loadBalancer: {ingress: [{ip: 198.51.100.9}]}}\n',
  );
  const r = cli(['compile', '--cluster', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /^warning: Service default\/edge: external IPs .*203\.0\.113\.7, 198\.51\.100\.9/m,
  );
  assert.match(r.stdout, /tp_dst=30007/);
});
