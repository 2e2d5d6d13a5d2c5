// Each traffic path of docs/pipeline.md has the flows it needs. (The simulator and the lab
// prove the paths end to end; these catch a missing or mis-targeted flow at the source.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { actionsText, example, find } from '../helpers/example.js';

const a = example('node-a');
const b = example('node-b');
const one = (flows: ReturnType<typeof find>, what: string) => {
  assert.equal(flows.length, 1, `expected exactly one flow: ${what}`);
  return actionsText(flows[0]);
};

test('pod → pod on the node: L3Forwarding rewrites MACs and targets the pod port', () => {
  const pod = a.dp.localPods.find((p) => p.name === 'web-a1')!;
  const acts = one(
    find(a.compiled.flows, 'L3Forwarding', `nw_dst=${pod.ip}`).filter((f) => f.priority === 200),
    'web-a1 forwarding',
  );
  assert.match(acts, new RegExp(`mod_dl_dst:${pod.mac}`));
  assert.match(acts, new RegExp(`load:0x${pod.ofport.toString(16)}->NXM_NX_REG1\\[\\]`));
  one(
    find(a.compiled.flows, 'SpoofGuard', `in_port=${pod.ofport}`, `nw_src=${pod.ip}`),
    'spoofguard',
  );
});

test('pod → pod on another node (noEncap): routed via the gateway; host route via the peer node IP', async () => {
  const acts = one(
    find(a.compiled.flows, 'L3Forwarding', 'ip').filter((f) => f.priority === 180),
    'default route',
  );
  assert.match(acts, /load:0x2->NXM_NX_REG1\[\]/);
  const { buildHostPlan } = await import('../../src/host/plan.js');
  const plan = buildHostPlan(a.state, a.dp);
  assert.deepEqual(
    plan.routes.filter((r) => r.destination === '10.244.2.0/24').map((r) => [r.device, r.via]),
    [['br-int', '192.168.77.12']],
  );
  // Replies from the peer arrive on the uplink and go through conntrack to the pod.
  assert.match(
    one(find(a.compiled.flows, 'Uplink', 'nw_dst=10.244.1.0/24'), 'uplink to pods'),
    /goto_table:30/,
  );
});

test('pod → ClusterIP: ServiceLB selects a group whose buckets DNAT in EndpointDnat', () => {
  const lb = one(
    find(a.compiled.flows, 'ServiceLB', 'tcp', 'nw_dst=10.96.0.10', 'tp_dst=80'),
    'web ClusterIP',
  );
  const gid = Number(/group:(\d+)/.exec(lb)![1]);
  const group = a.compiled.groups.find((g) => g.id === gid)!;
  assert.equal(group.buckets.length, 2);
  for (const ep of ['10.244.1.10', '10.244.2.10'])
    assert.match(
      one(
        find(
          a.compiled.flows,
          'EndpointDnat',
          `reg3=0x${ep
            .split('.')
            .map((o) => (+o).toString(16).padStart(2, '0'))
            .join('')
            .replace(/^0+/, '')}`,
          'tcp',
        ),
        ep,
      ),
      new RegExp(`nat\\(dst=${ep}:8080\\)`),
    );
});

test('pod → ClusterIP with hostNetwork endpoints: local host gets hostReturnIP as source', () => {
  const flows = find(a.compiled.flows, 'L3Forwarding', 'nw_src=10.244.1.1', 'nw_dst=192.168.77.11');
  assert.match(one(flows, 'local host endpoint'), /mod_nw_src:169\.254\.169\.111/);
  // and the host's reply to hostReturnIP is put back on the gateway IP before conntrack
  assert.match(
    one(find(a.compiled.flows, 'SourceDispatch', 'nw_dst=169.254.169.111'), 'return'),
    /mod_nw_dst:10\.244\.1\.1,goto_table:30/,
  );
});

test('host → ClusterIP: ARP responder for the ClusterIP on the gateway, route to the gateway, commit-conflict fix', async () => {
  assert.match(
    one(find(a.compiled.flows, 'ArpResponder', 'reg0=0x1/0xf', 'arp_tpa=10.96.0.10'), 'arp'),
    /set_field:aa:bb:cc:dd:ee:ff->arp_sha/,
  );
  const { buildHostPlan } = await import('../../src/host/plan.js');
  const r = buildHostPlan(a.state, a.dp).routes.find((x) => x.destination === '10.96.0.10/32')!;
  assert.deepEqual([r.device, r.source], ['gw0', '10.244.1.1']);
  const skip = find(a.compiled.flows, 'ConntrackCommit', 'ct_mark=0x1/0x1');
  assert.match(one(skip, 'skip commit for service connections'), /^goto_table:110$/);
  assert.ok(
    skip[0].priority >
      find(a.compiled.flows, 'ConntrackCommit', 'ct_state=+new+trk').filter(
        (f) => !actionsText(f).startsWith('goto'),
      )[0].priority,
  );
});

test('external → NodePort (ETP Cluster): filter, DNAT to virtual IP, SNAT to gateway IP, LB on the virtual IP', () => {
  for (const ip of a.dp.nodeIPs)
    one(find(a.compiled.flows, 'NodePortFilter1', `nw_dst=${ip}`), `node address ${ip}`);
  assert.match(
    one(find(a.compiled.flows, 'NodePortFilter2', 'tp_dst=30080'), 'port'),
    /ct\(table=8,zone=52100,nat\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'Dnat', 'ct_state=+new+trk'), 'dnat'),
    /nat\(dst=169\.254\.169\.110\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'Snat', 'ct_state=+new+trk', 'reg8=0x1/0xffff'), 'snat'),
    /nat\(src=10\.244\.1\.1:10000-32767\)/,
  );
  const lb = one(
    find(a.compiled.flows, 'ServiceLB', 'nw_dst=169.254.169.110', 'tp_dst=30080'),
    'lb (one flow for uplink and host: the same endpoints)',
  );
  assert.match(lb, /^group:/);
});

test('external → NodePort (ETP Local): SNAT skipped; only local endpoints; none → drop', () => {
  one(find(a.compiled.flows, 'Snat', 'nw_dst=169.254.169.110', 'tp_dst=30081'), 'skip snat');
  // node-b has no local endpoint: nothing to skip there
  assert.equal(find(b.compiled.flows, 'Snat', 'tp_dst=30081').length, 0);
  // node-a: every endpoint is local, so one LB flow serves uplink and host alike
  const lbA = one(find(a.compiled.flows, 'ServiceLB', 'tp_dst=30081'), 'lb on node-a');
  const gid = Number(/group:(\d+)/.exec(lbA)![1]);
  assert.deepEqual(a.compiled.groups.find((g) => g.id === gid)!.buckets.length, 1);
  assert.equal(
    one(
      find(b.compiled.flows, 'ServiceLB', 'reg0=0x4/0xf', 'tp_dst=30081'),
      'node-b has no local endpoint',
    ),
    'drop',
  );
  // The host itself may use any endpoint (kube-proxy behaviour).
  assert.match(
    one(
      find(b.compiled.flows, 'ServiceLB', 'tp_dst=30081').filter((f) => f.priority === 200),
      'host lb',
    ),
    /^group:/,
  );
});

test('NodePort reply: un-DNAT to the virtual IP walks the zones back and leaves via the gateway', () => {
  assert.match(
    one(
      find(a.compiled.flows, 'L3Forwarding', 'ct_state=+rpl+trk', 'nw_src=169.254.169.110'),
      'reply',
    ),
    /load:0x2->NXM_NX_REG8\[0..15\],resubmit\(,12\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'PostSnat', 'reg8=0x2/0xffff'), 'unsnat'),
    /ct\(table=11,zone=52200,nat\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'Snat', 'reg8=0x2/0xffff'), 'undnat'),
    /ct\(table=8,zone=52100,nat\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'Dnat', 'reg8=0x2/0xffff'), 'to host'),
    /load:0x2->NXM_NX_REG1\[\],goto_table:110/,
  );
});

test('host → NodePort and 127.0.0.1: host redirect to the virtual IP through the gateway', async () => {
  const { buildHostPlan } = await import('../../src/host/plan.js');
  const plan = buildHostPlan(a.state, a.dp);
  const r = plan.nodePortRedirects.find((x) => x.port === 30080)!;
  assert.deepEqual(r.addresses, ['192.168.77.11', '192.168.77.21', '127.0.0.1']);
  assert.equal(r.toIP, '169.254.169.110');
  assert.ok(plan.routes.some((x) => x.destination === '169.254.169.110/32' && x.device === 'gw0'));
  assert.ok(plan.interfaces.some((i) => i.device === 'gw0' && i.routeLocalnet && i.acceptLocal));
});

test('uplink: only node addresses reach LOCAL; IGMP dropped; a Service without endpoints drops', () => {
  for (const ip of a.dp.nodeIPs)
    assert.equal(one(find(a.compiled.flows, 'UplinkToHost', `nw_dst=${ip}`), ip), 'LOCAL');
  assert.equal(one(find(a.compiled.flows, 'Classifier', 'nw_proto=2'), 'igmp'), 'drop');
  assert.equal(one(find(a.compiled.flows, 'ServiceLB', 'nw_dst=10.96.0.15'), 'empty'), 'drop');
});

test('UDP and multi-port Services get one LB flow per port', () => {
  one(find(a.compiled.flows, 'ServiceLB', 'udp', 'nw_dst=10.96.0.12', 'tp_dst=53'), 'udp');
  one(find(a.compiled.flows, 'ServiceLB', 'tcp', 'nw_dst=10.96.0.13', 'tp_dst=80'), 'multi http');
  one(find(a.compiled.flows, 'ServiceLB', 'udp', 'nw_dst=10.96.0.13', 'tp_dst=53'), 'multi dns');
});

test('pod → its own Service (hairpin): SNAT to the gateway IP, out by IN_PORT, reply un-SNATed first', () => {
  const pod = a.dp.localPods.find((p) => p.name === 'web-a1')!;
  const self = [`nw_src=${pod.ip}`, `nw_dst=${pod.ip}`];
  assert.match(
    one(find(a.compiled.flows, 'L3Forwarding', 'ct_state=+new+trk', ...self), 'hairpin snat'),
    /load:0x1->NXM_NX_REG0\[8..8\],ct\(commit,table=70,zone=52200,nat\(src=10\.244\.1\.1:10000-32767\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'L3Forwarding', 'ct_state=-new+trk', ...self), 'hairpin est'),
    /ct\(table=70,zone=52200,nat\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'SourceDispatch', 'reg0=0x2/0xf', 'nw_dst=10.244.1.1'), 'unsnat'),
    /ct\(table=30,zone=52200,nat\)/,
  );
  assert.match(
    one(find(a.compiled.flows, 'Conntrack', 'reg0=0x2/0xf', 'ct_state=+rpl+trk'), 'reply'),
    /load:0x1->NXM_NX_REG0\[8..8\]/,
  );
  assert.equal(
    one(find(a.compiled.flows, 'L2ForwardingOut', 'reg0=0x100/0x100'), 'in_port'),
    'in_port',
  );
});
