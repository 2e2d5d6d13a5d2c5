// `svcflow lab` end to end: the compiled pipeline and host plan on real OVS in namespaces, real
// TCP/UDP through every path of docs/pipeline.md, for the two-node and three-node examples.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { REPO_ROOT } from '../../src/cli/context.js';
import {
  clusterLabUp,
  formatResults,
  planClusterLab,
  runClusterLabPaths,
  type ClusterLabOptions,
} from '../../src/lab/cluster-lab.js';
import { enumeratePaths } from '../../src/lab/paths.js';
import { announceSkip, labSkipReason, teardown } from './helpers.js';

const skip = await labSkipReason();
if (skip) announceSkip(skip);

const log = (line: string) => process.stderr.write(`  ${line}\n`);

describe('path enumeration (pure)', () => {
  it('covers every group of docs/pipeline.md for the two-node example', () => {
    const cl = planClusterLab({ prefix: 'svlc' });
    const paths = enumeratePaths(cl.state, cl.dps, cl.spec.external.ip);
    const groups = new Set(paths.map((p) => p.group));
    for (const g of ['1 ', '2 ', '3 ', '4 ', '5 ', '6 ', '7 ', '8 ', '9 '])
      assert.ok(
        [...groups].some((x) => x.startsWith(g)),
        `no path in group ${g}`,
      );
    assert.ok(paths.some((p) => p.protocol === 'UDP' && p.dest.port === 30053));
    assert.ok(paths.some((p) => p.mustFail?.includes('ETP Local')));
    assert.ok(paths.some((p) => p.mustFail?.includes('no endpoints')));
    // a hostNetwork endpoint on the entry node sees hostReturnIP for gateway-IP clients
    const hostToHostEcho = paths.find((p) => p.name === 'host node-a → host-echo ClusterIP');
    assert.deepEqual(hostToHostEcho?.servers, [
      { name: 'host:node-a', peer: '169.254.169.111' },
      { name: 'host:node-b', peer: '10.244.1.1' },
    ]);
    const etpLocal = paths.find(
      (p) => p.name.startsWith('external → node-a main') && p.dest.port === 30081,
    );
    assert.deepEqual(etpLocal?.servers, [{ name: 'default/local-a1', peer: '192.168.77.100' }]);
  });
});

async function runLab(opts: ClusterLabOptions, budgetMs: number) {
  const t0 = Date.now();
  await clusterLabUp(opts, log);
  const cl = planClusterLab(opts);
  const results = await runClusterLabPaths(cl, { log });
  process.stderr.write(formatResults(results));
  log(
    `${opts.prefix}: ${((Date.now() - t0) / 1000).toFixed(1)} s for up + ${results.length} paths`,
  );
  const failed = results.filter((r) => !r.ok).map((r) => `${r.path.name}: ${r.problems}`);
  assert.deepEqual(failed, []);
  assert.ok(Date.now() - t0 < budgetMs, `took ${Date.now() - t0} ms`);
  return results;
}

describe('svcflow lab on the two-node example', { skip, timeout: 300_000 }, () => {
  after(() => teardown('svlc'));
  it('passes every path', async () => {
    const results = await runLab({ prefix: 'svlc' }, 240_000);
    assert.ok(results.length >= 60);
  });
});

describe('svcflow lab on the three-node example', { skip, timeout: 300_000 }, () => {
  after(() => teardown('svl3'));
  it('passes every path, with endpoints on all three nodes', async () => {
    const clusterPath = join(REPO_ROOT, 'examples', 'three-node', 'cluster.yaml');
    const results = await runLab({ prefix: 'svl3', clusterPath }, 240_000);
    const spread = results.find(
      (r) =>
        r.path.name ===
        'external → node-c main 192.168.77.13: spread:http NodePort 30100/TCP ETP Cluster',
    );
    assert.ok(spread, 'the spread NodePort path on node-c');
    assert.equal(Object.keys(spread.seen).length, 3);
  });
});
