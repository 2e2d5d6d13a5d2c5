// verify on the bundled examples, and one deliberately broken program per contract check.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadInputs, REPO_ROOT } from '../../src/cli/context.js';
import type { Flow } from '../../src/openflow/types.js';
import { renderFlow } from '../../src/openflow/render.js';
import { buildClusterModel, withProgram, type ClusterModel } from '../../src/sim/cluster.js';
import { compileProgram } from '../../src/sim/interpreter.js';
import { clusterPaths, verifyCluster, type CheckName } from '../../src/sim/verify.js';

const model = buildClusterModel(loadInputs().state, loadInputs().config);

/** The example with node's flows edited. */
function broken(node: string, edit: (flows: Flow[]) => Flow[]): ClusterModel {
  const n = model.nodes.find((x) => x.name === node)!;
  const flows = edit([...n.compiled.flows]);
  return withProgram(model, node, compileProgram({ groups: n.compiled.groups, flows }));
}

const text = (f: Flow) => renderFlow(f);
const without = (pred: (t: string) => boolean) => (flows: Flow[]) => {
  const out = flows.filter((f) => !pred(text(f)));
  assert.ok(out.length < flows.length, 'the edit must remove a flow');
  return out;
};

/** Failing checks of the paths whose name contains `pathPart`. */
function failures(m: ClusterModel, pathPart: string): Set<CheckName> {
  const paths = clusterPaths(m).filter((p) => p.name.includes(pathPart));
  assert.ok(paths.length > 0, `no path named like ${pathPart}`);
  const r = verifyCluster(m, { paths });
  return new Set(r.cases.flatMap((c) => c.problems.map((p) => p.check)));
}

describe('verify: the examples keep the contract', () => {
  for (const dir of ['two-node', 'three-node']) {
    const root = join(REPO_ROOT, 'examples', dir);
    it(dir, { skip: !existsSync(root) && `no examples/${dir}` }, () => {
      const l = loadInputs(join(root, 'cluster.yaml'), join(root, 'svcflow.yaml'));
      const r = verifyCluster(buildClusterModel(l.state, l.config));
      const bad = r.cases.filter((c) => !c.ok);
      assert.deepEqual(
        bad.map((c) => `${c.path.name} → ${c.target?.name}: ${JSON.stringify(c.problems)}`),
        [],
      );
      assert.ok(r.passed > 50);
      // every path group of docs/pipeline.md is exercised, must-fail ones included
      const groups = new Set(r.cases.map((c) => c.path.group.split(' ')[0]));
      const docGroups = ['1', '2', '3', '4', '5', '6', '7', '8', '9'].filter((g) => groups.has(g));
      assert.ok(docGroups.length >= 8, [...groups].join());
      assert.ok(groups.has('0'), 'isolation probes ran');
    });
  }
  it('must-fail paths are in the list and pass by not delivering', () => {
    const r = verifyCluster(model);
    const mustFail = r.cases.filter((c) => c.path.mustFail);
    assert.ok(mustFail.length >= 4);
    assert.ok(mustFail.every((c) => c.ok && c.reached === undefined));
  });
});

describe('verify: each contract check catches a broken program', () => {
  it('reaches-endpoint: no ServiceLB flow for the web ClusterIP', () => {
    const m = broken(
      'node-a',
      without((t) => t.includes('table=41') && t.includes('nw_dst=10.96.0.10,')),
    );
    assert.ok(failures(m, 'client-a → web ClusterIP').has('reaches-endpoint'));
  });

  it('client-address: external NodePort ETP Cluster not SNATed', () => {
    const m = broken('node-a', (flows) => {
      const skip = flows.find((f) => f.table === 11 && f.priority === 210)!;
      const copy: Flow = {
        ...skip,
        match: skip.match.map((x) => (x.kind === 'tp_dst' ? { ...x, port: 30080 } : x)),
      };
      return [copy, ...flows];
    });
    // (the remote endpoint's reply also bypasses node-a's un-NAT: reply-addresses fails too)
    const f = failures(m, 'external → node-a main 192.168.77.11: web NodePort');
    assert.ok(f.has('client-address'));
  });

  it('same-server: established NodePort requests lose their SNAT branch', () => {
    const m = broken(
      'node-a',
      without((t) => t.includes('table=11') && t.includes('ct_state=+est+trk')),
    );
    assert.ok(failures(m, 'external → node-a main 192.168.77.11: web NodePort').has('same-server'));
  });

  it('reply-addresses: NodePort replies do not walk the NodePort zones back', () => {
    const m = broken(
      'node-a',
      without((t) => t.includes('table=70') && t.includes('priority=220')),
    );
    const f = failures(m, 'external → node-a main 192.168.77.11: web NodePort');
    assert.ok(f.has('reply-addresses'), [...f].join());
  });

  it('no-duplicate: an output stage that also copies to LOCAL', () => {
    const m = broken('node-a', (flows) => [
      {
        table: 110,
        priority: 205,
        cookie: 0n,
        match: [{ kind: 'eth_type', value: 'ip' }],
        actions: [
          { kind: 'output_reg', slice: { reg: 1, start: 0, end: 31 } },
          { kind: 'output', port: 'LOCAL' },
        ],
      },
      ...flows,
    ]);
    assert.ok(failures(m, 'client-a → local-a1').has('no-duplicate'));
  });

  it('must-fail: the Service without endpoints load-balanced anyway', () => {
    const m = broken('node-a', (flows) => {
      const web = flows.find((f) => f.table === 41 && text(f).includes('nw_dst=10.96.0.10,'))!;
      return flows.map((f) =>
        f.table === 41 && text(f).includes('nw_dst=10.96.0.15,')
          ? { ...f, actions: web.actions }
          : f,
      );
    });
    assert.deepEqual([...failures(m, 'client-a → empty ClusterIP')], ['must-fail']);
  });
});
