// Every flow and group `svcflow compile` prints for the example loads into a real userspace
// ovs-vswitchd, and reads back unchanged (same count, same tables, same cookies).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { run } from '../../src/lab/exec.js';
import { OvsInstance } from '../../src/lab/ovs-instance.js';
import { recordNamespace } from '../../src/lab/state.js';
import { applyProgram, dumpFlows, dumpGroups } from '../../src/ovs/ofctl.js';
import { renderProgram } from '../../src/openflow/render.js';
import { parseFlows, parseGroups } from '../../src/openflow/parse.js';
import { example } from '../helpers/example.js';
import { announceSkip, labSkipReason, teardown } from '../lab/helpers.js';

const PREFIX = 'svlo';
const NS = `${PREFIX}-load`;
const skip = await labSkipReason();
if (skip) announceSkip(skip);

describe('compiled pipeline loads into real OVS', { skip }, () => {
  let ovs: OvsInstance;
  before(async () => {
    await teardown(PREFIX);
    await recordNamespace(PREFIX, NS);
    await run(['ip', 'netns', 'add', NS]);
    ovs = new OvsInstance({ prefix: PREFIX, node: 'load', ns: NS });
    await ovs.start();
    await ovs.addBridge();
  });
  after(async () => teardown(PREFIX));

  for (const node of ['node-a', 'node-b']) {
    it(`${node}: all groups and flows load in one bundle and read back`, async () => {
      const { compiled } = example(node);
      const text = renderProgram(compiled);
      await applyProgram(ovs.openflowTarget(), text.groups, text.flows);
      const flows = parseFlows(await dumpFlows(ovs.openflowTarget()));
      const groups = parseGroups(await dumpGroups(ovs.openflowTarget()));
      assert.equal(flows.length, compiled.flows.length);
      assert.equal(groups.length, compiled.groups.length);
      const key = (f: { table: number; priority: number; cookie: bigint }) =>
        `${f.table}/${f.priority}/${f.cookie}`;
      assert.deepEqual(flows.map(key).sort(), compiled.flows.map(key).sort());
      assert.deepEqual(groups.map((g) => g.id).sort(), compiled.groups.map((g) => g.id).sort());
    });
  }
});
