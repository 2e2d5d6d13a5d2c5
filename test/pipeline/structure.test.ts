import { test } from 'node:test';
import assert from 'node:assert/strict';
import { example } from '../helpers/example.js';
import { TABLES } from '../../src/pipeline/tables.js';
import { renderMatch, renderProgram } from '../../src/openflow/render.js';
import type { Action } from '../../src/openflow/types.js';

const tableNumbers = new Set(TABLES.map((t) => t.number));

function targets(actions: Action[]): number[] {
  return actions.flatMap((a) =>
    a.kind === 'goto_table' || a.kind === 'resubmit'
      ? [a.table]
      : a.kind === 'ct' && a.table !== undefined
        ? [a.table]
        : [],
  );
}

for (const node of ['node-a', 'node-b']) {
  test(`${node}: every goto/resubmit/ct target table is declared`, () => {
    const { compiled } = example(node);
    for (const f of compiled.flows) {
      assert.ok(tableNumbers.has(f.table), `flow in undeclared table ${f.table}`);
      for (const t of targets(f.actions))
        assert.ok(tableNumbers.has(t), `table ${f.table} jumps to undeclared table ${t}`);
    }
    for (const g of compiled.groups)
      for (const b of g.buckets)
        for (const t of targets(b.actions)) assert.ok(tableNumbers.has(t), `group ${g.id} → ${t}`);
  });

  test(`${node}: goto_table only goes forward (OpenFlow rule)`, () => {
    const { compiled } = example(node);
    for (const f of compiled.flows)
      for (const a of f.actions)
        if (a.kind === 'goto_table')
          assert.ok(a.table > f.table, `table ${f.table} goto ${a.table}`);
  });

  test(`${node}: every referenced group exists and every group is referenced`, () => {
    const { compiled } = example(node);
    const ids = new Set(compiled.groups.map((g) => g.id));
    const used = new Set<number>();
    for (const f of compiled.flows)
      for (const a of f.actions)
        if (a.kind === 'group') {
          assert.ok(ids.has(a.id), `missing group ${a.id}`);
          used.add(a.id);
        }
    for (const id of ids) assert.ok(used.has(id), `group ${id} is never used`);
  });

  test(`${node}: no two flows share table, priority and match`, () => {
    const { compiled } = example(node);
    const seen = new Set<string>();
    for (const f of compiled.flows) {
      const k = `${f.table}|${f.priority}|${renderMatch(f.match)}`;
      assert.ok(!seen.has(k), `duplicate flow ${k}`);
      seen.add(k);
    }
  });

  test(`${node}: every table has a miss flow and every ct(table=…) is the last action`, () => {
    const { compiled } = example(node);
    for (const t of TABLES)
      assert.ok(
        compiled.flows.some(
          (f) => f.table === t.number && f.priority === 0 && f.match.length === 0,
        ),
        `no miss flow in ${t.name}`,
      );
    // Anything after a recirculating ct() would run on a second copy of the packet: a duplicate.
    for (const f of [...compiled.flows, ...compiled.groups.flatMap((g) => g.buckets)])
      f.actions.forEach((a, i) => {
        if (a.kind === 'ct' && a.table !== undefined)
          assert.equal(i, f.actions.length - 1, 'ct(table) must end the action list');
        if (a.kind === 'output' || a.kind === 'output_reg')
          assert.equal(i, f.actions.length - 1, 'output must end the action list');
      });
  });
}

test('output is identical across runs', () => {
  const a = renderProgram(example('node-a').compiled);
  const b = renderProgram(example('node-a').compiled);
  assert.equal(a.flows, b.flows);
  assert.equal(a.groups, b.groups);
  assert.ok(a.flows.length > 1000);
});

test('cookies carry the round and find one Service', async () => {
  const { compiled } = example('node-a');
  const { decodeCookie, objectId, Category } = await import('../../src/pipeline/cookies.js');
  const web = objectId('default/web');
  const webFlows = compiled.flows.filter((f) => decodeCookie(f.cookie).object === web);
  assert.ok(webFlows.length >= 4, 'web has ClusterIP, ARP, NodePort filter and LB flows');
  for (const f of webFlows) {
    assert.equal(decodeCookie(f.cookie).category, Category.service);
    assert.equal(decodeCookie(f.cookie).round, 1);
  }
});
