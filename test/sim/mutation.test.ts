// Mutation check: delete each single flow of one node's compiled program (the two-node example)
// and run verify. Every deletion must make some path fail, except the flows listed in SURVIVORS,
// each with the reason it is not observable. A new survivor (or a listed one that verify now
// catches) fails the test, so the list stays true.
//
// Priority-0 misses whose action is `drop` are skipped: OVS's own table miss (OpenFlow 1.3+,
// and the simulator's) drops, so deleting them changes nothing by definition; the test checks
// that this is the only kind skipped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadInputs } from '../../src/cli/context.js';
import type { Flow } from '../../src/openflow/types.js';
import { buildClusterModel, ClusterSim, withProgram } from '../../src/sim/cluster.js';
import { flowText } from '../../src/sim/describe.js';
import { compileProgram } from '../../src/sim/interpreter.js';
import { clusterPaths, verifyCluster } from '../../src/sim/verify.js';

/** node → `table=N,` + flow text (no cookie) → why deleting it is not observable */
const SURVIVORS: Record<string, Record<string, string>> = {};
const survive = (nodes: string[], flow: string, why: string) => {
  for (const n of nodes) (SURVIVORS[n] ??= {})[flow.replaceAll('NODE_GW', gw[n])] = why;
};
const gw: Record<string, string> = { 'node-a': '10.244.1', 'node-b': '10.244.2' };
const both = ['node-a', 'node-b'];
survive(
  both,
  'table=5,priority=0 actions=LOCAL',
  'non-IP, non-ARP frames from the uplink (LLDP, IPv6, …): ARP never gets here (table 1 handles it) and the simulator models only IPv4 and ARP',
);
survive(
  both,
  'table=6,priority=0 actions=goto_table:13',
  'only reached for a node address that does not answer NodePorts; the example uses nodePortAddresses [] (every address answers)',
);
survive(
  both,
  'table=13,priority=200,ip,nw_dst=255.255.255.255 actions=LOCAL',
  'limited broadcast (DHCP and the like) is not modelled: stations only send to on-link unicast addresses',
);
survive(
  both,
  'table=41,priority=200,tcp,nw_dst=10.96.0.15,tp_dst=80 actions=drop',
  'defensive: an endpoint-less ClusterIP gets no ARP answer, so the simulated host (which always resolves afresh) never sends to it; a real host holding a stale neighbour entry would, and without this drop OVS would hand the packet back to the gateway, which routes it to OVS again until the TTL runs out',
);
survive(
  ['node-a'],
  'table=70,priority=210,ip,ct_state=-rpl+trk,ct_mark=0x1/0x1,nw_src=10.244.1.1,nw_dst=192.168.77.21 actions=mod_nw_src:169.254.169.111,mod_dl_src:aa:bb:cc:dd:ee:ff,mod_dl_dst:0a:59:0a:f4:01:01,load:0x2->NXM_NX_REG1[],goto_table:105',
  'hostReturnIP for a hostNetwork endpoint on the secondary address: no endpoint in the example uses a secondary address',
);
survive(
  ['node-b'],
  'table=70,priority=210,ip,ct_state=-rpl+trk,ct_mark=0x1/0x1,nw_src=10.244.2.1,nw_dst=192.168.77.22 actions=mod_nw_src:169.254.169.111,mod_dl_src:aa:bb:cc:dd:ee:ff,mod_dl_dst:0a:59:0a:f4:02:01,load:0x2->NXM_NX_REG1[],goto_table:105',
  'hostReturnIP for a hostNetwork endpoint on the secondary address: no endpoint in the example uses a secondary address',
);
survive(
  both,
  'table=70,priority=190,ip,nw_dst=NODE_GW.0/24 actions=drop',
  'defensive: unknown local pod IPs. Without it they go to the host, whose ARP for them on the gateway is not answered (no delivery either way), but a host with a stale neighbour entry for a deleted pod would send them back into OVS and loop until the TTL runs out',
);

for (const [node, client, gwIp] of [
  ['node-a', '10.244.1.20', '10.244.1.1'],
  ['node-b', '10.244.2.20', '10.244.2.1'],
]) {
  const why =
    'hairpin flows of a pod that backs no Service in the example: they are per pod on purpose, so pod flows stay independent of Services (the agent recompiles one Service without touching pod flows); they become needed as soon as a Service selects the pod';
  const self = `nw_src=${client},nw_dst=${client}`;
  survive(
    [node],
    `table=70,priority=215,ip,ct_state=+new+trk,ct_mark=0x1/0x1,${self} actions=load:0x1->NXM_NX_REG0[8..8],ct(commit,table=70,zone=52200,nat(src=${gwIp}:10000-32767),exec(load:0x1->NXM_NX_CT_MARK[0..0]))`,
    why,
  );
  survive(
    [node],
    `table=70,priority=215,ip,ct_state=-new+trk,${self} actions=load:0x1->NXM_NX_REG0[8..8],ct(table=70,zone=52200,nat)`,
    why,
  );
}

const key = (f: Flow) => `table=${f.table},${flowText(f)}`;
const isDropMiss = (f: Flow) =>
  f.priority === 0 &&
  f.match.length === 0 &&
  f.actions.length === 1 &&
  f.actions[0].kind === 'drop';

describe('mutation check: every flow is needed by some path', () => {
  const loaded = loadInputs();
  const model = buildClusterModel(loaded.state, loaded.config);
  const paths = clusterPaths(model);

  for (const node of model.nodes) {
    it(`${node.name}: each single deletion fails verify, or is a listed survivor`, () => {
      const flows = node.compiled.flows;
      const survivors: Record<string, string> = {};
      let skipped = 0;
      for (let i = 0; i < flows.length; i++) {
        if (isDropMiss(flows[i])) {
          skipped++;
          continue;
        }
        const program = compileProgram({
          groups: node.compiled.groups,
          flows: flows.filter((_, j) => j !== i),
        });
        const mutant = withProgram(model, node.name, program);
        const r = verifyCluster(mutant, { paths, failFast: true, sim: new ClusterSim(mutant) });
        if (r.failed === 0)
          survivors[key(flows[i])] = SURVIVORS[node.name]?.[key(flows[i])] ?? 'NEW';
      }
      assert.ok(skipped > 0 && skipped < 20);
      assert.deepEqual(survivors, SURVIVORS[node.name]);
    });
  }
});
