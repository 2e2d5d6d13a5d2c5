// The OVS edge against a real private ovs-vswitchd: first install, incremental changes, a new
// cookie round installed without a flush, and replay after ovs-vswitchd restarts. After every
// step the switch holds exactly compileNode(final objects) (rendered text sets compared).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { validateObjects } from '../../src/cluster/validate.js';
import { resolveNode } from '../../src/config/resolve.js';
import { DesiredProgram } from '../../src/agent/desired.js';
import { KINDS, type RawObject, type SourceEvent } from '../../src/agent/source.js';
import { ObjectStore } from '../../src/agent/store.js';
import { run } from '../../src/lab/exec.js';
import { OvsInstance } from '../../src/lab/ovs-instance.js';
import { killPid, recordNamespace } from '../../src/lab/state.js';
import { flowKey, ofctlRunner, OvsSync, type OfctlRunner } from '../../src/ovs/sync.js';
import { announceSkip, labSkipReason, teardown } from '../lab/helpers.js';
import {
  byName,
  exampleConfig,
  exampleObjects,
  reference,
  service,
  slice,
  textOf,
  textOfDump,
} from './helpers.js';

const PREFIX = 'svag';
const NS = `${PREFIX}-sync`;
const skip = await labSkipReason();
if (skip) announceSkip(skip);

describe('OVS sync against a real ovs-vswitchd', { skip, timeout: 120_000 }, () => {
  let ovs: OvsInstance;
  let ofctl: OfctlRunner;
  const store = new ObjectStore();
  const config = exampleConfig();

  before(async () => {
    await teardown(PREFIX);
    await recordNamespace(PREFIX, NS);
    await run(['ip', 'netns', 'add', NS]);
    ovs = new OvsInstance({ prefix: PREFIX, node: 'sync', ns: NS });
    await ovs.start();
    await ovs.addBridge();
    ofctl = ofctlRunner(ovs.openflowTarget());
  });
  after(async () => teardown(PREFIX));

  async function installed() {
    return textOfDump(await ofctl.dumpFlows(), await ofctl.dumpGroups());
  }

  function step(desired: DesiredProgram, events: SourceEvent[]) {
    for (const e of events) store.apply(e);
    const { state } = validateObjects(store.objects());
    desired.update(state, resolveNode(state, config, 'node-a'), store.takeChanges());
    return desired.program();
  }

  let sync: OvsSync;
  let desired: DesiredProgram;

  it('first sync installs exactly the compiled program', async () => {
    sync = new OvsSync(ofctl);
    const round = await sync.pickRound();
    assert.equal(round, 1);
    desired = new DesiredProgram(round);
    const program = step(desired, [{ type: 'snapshot', kinds: KINDS, objects: exampleObjects() }]);
    const r = await sync.sync(program);
    assert.equal(r.plan.flowAdds.length, program.flows.length);
    assert.deepEqual(await installed(), textOf(reference(store.objects(), 'node-a', 1)));
    // nothing changed: no bundle at all
    const again = await sync.sync(program, { verify: true });
    assert.equal(
      again.plan.flowAdds.length + again.plan.flowDeletes.length + again.plan.groupMods.length,
      0,
    );
  });

  it('add a Service, scale endpoints, delete a Service: small bundles, exact result', async () => {
    const objects = exampleObjects();
    const web = byName(objects, 'EndpointSlice', 'web-x1');
    (web.endpoints as RawObject[]).push({
      addresses: ['10.244.2.77'],
      conditions: { ready: true },
      nodeName: 'node-b',
    });
    const events: SourceEvent[][] = [
      [
        { type: 'add', object: service('api', '10.96.0.50', 80) },
        { type: 'add', object: slice('api-1', 'api', [{ ip: '10.244.2.30', node: 'node-b' }]) },
      ],
      [{ type: 'update', object: web }],
      [{ type: 'delete', object: byName(objects, 'Service', 'echo-udp') }],
      [{ type: 'delete', object: service('api', '10.96.0.50', 80) }],
    ];
    for (const batch of events) {
      const r = await sync.sync(step(desired, batch));
      assert.ok(r.plan.flowAdds.length < 20, `bundle too big: ${r.plan.flowAdds.length} adds`);
      assert.deepEqual(await installed(), textOf(reference(store.objects(), 'node-a', 1)));
    }
    // scaling web changed its group in place
    const groups = await ofctl.dumpGroups();
    assert.match(groups, /10\.244\.2\.77|0xaf4024d/);
  });

  it('a restarted agent installs a new round alongside and removes the old one, without a flush', async () => {
    const fresh = new OvsSync(ofctl);
    const round = await fresh.pickRound();
    assert.equal(round, 2);
    const d2 = new DesiredProgram(round);
    const program = step(d2, [{ type: 'snapshot', kinds: KINDS, objects: store.objects() }]);
    const r = await fresh.sync(program);
    // every flow of the new round replaces its old-round twin in place (same table+priority+match);
    // nothing the new program wants is ever deleted
    const wanted = new Set(program.flows.map(flowKey));
    assert.equal(r.plan.flowDeletes.filter((f) => wanted.has(flowKey(f))).length, 0);
    assert.equal(r.plan.flowAdds.length, program.flows.length);
    assert.deepEqual(await installed(), textOf(reference(store.objects(), 'node-a', 2)));
    sync = fresh;
    desired = d2;
  });

  it('ovs-vswitchd restart is detected and everything is replayed', async () => {
    assert.ok(ovs.vswitchdPid);
    assert.ok(await killPid(ovs.vswitchdPid, 'ovs-vswitchd'));
    await ovs.startVswitchd('ovs-vswitchd sync');

    // the bridge comes back empty; allow the daemon a bounded moment to open its socket
    let result;
    for (let i = 0; ; i++) {
      try {
        result = await sync.sync(desired.program());
        break;
      } catch (err) {
        if (i >= 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    assert.ok(result.replayed || result.reread, 'restart not noticed');
    assert.deepEqual(await installed(), textOf(reference(store.objects(), 'node-a', 2)));
  });

  it('a failing bundle leaves the switch as it was', async () => {
    const before = await installed();
    const broken = desired.program();
    broken.flows = [
      ...broken.flows,
      {
        table: 0,
        priority: 5,
        cookie: 0n,
        match: [],
        actions: [{ kind: 'group', id: 0xfffffff0 }],
      },
    ];
    await assert.rejects(sync.sync(broken));
    assert.deepEqual(await installed(), before);
    // and the next sync re-reads and converges
    await sync.sync(desired.program());
    assert.deepEqual(await installed(), textOf(reference(store.objects(), 'node-a', 2)));
  });
});
