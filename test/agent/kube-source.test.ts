// The Kubernetes source against FakeApiServer, through the real @kubernetes/client-node over
// HTTP. Reflector timers (backoff, staleness, relist) run on a FakeClock; the only real waiting
// is for HTTP round trips, bounded by waitFor.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';

import { KubeSource } from '../../src/agent/kube.js';
import { ObjectStore } from '../../src/agent/store.js';
import { FakeApiServer } from './fake-apiserver.js';
import { FakeClock, settle } from './fake-clock.js';
import { capturingLogger, exampleObjects, service } from './helpers.js';

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Kubernetes source (list/watch reflectors)', { timeout: 60_000 }, () => {
  const api = new FakeApiServer();
  const clock = new FakeClock();
  const store = new ObjectStore();
  const { log, lines } = capturingLogger();
  let source: KubeSource;
  const has = (name: string) =>
    store
      .objects()
      .some((o) => o.kind === 'Service' && (o.metadata as { name: string }).name === name);
  const svcReflector = () => source.reflectors.find((_, i) => i === 0)!;

  before(async () => {
    api.seed(exampleObjects());
    const server = await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server, skipTLSVerify: true }],
      users: [{ name: 'agent' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'agent' }],
      currentContext: 'fake',
    });
    source = new KubeSource({
      nodeName: 'node-a',
      kc,
      clock,
      random: () => 0,
      log,
      staleMs: 60_000,
      relistMs: 600_000,
      backoffInitialMs: 1000,
      backoffMaxMs: 8000,
    });
  });
  after(async () => {
    await source.stop();
    await api.stop();
  });

  it('lists every kind (Pods of this node only), then watches from the list version', async () => {
    await source.start((ev) => store.apply(ev));
    await waitFor('all four lists', () => store.ready);
    await waitFor('four watches', () => api.openWatches() === 4);
    assert.ok(api.requests.includes('list /api/v1/pods spec.nodeName=node-a'));
    const pods = store.objects().filter((o) => o.kind === 'Pod');
    assert.ok(pods.length > 0);
    assert.ok(pods.every((p) => (p.spec as { nodeName: string }).nodeName === 'node-a'));
    assert.equal(store.objects().filter((o) => o.kind === 'Service').length, 6);
    assert.ok(
      store.objects().every((o) => typeof o.kind === 'string' && typeof o.apiVersion === 'string'),
    );
  });

  it('watch add, update and delete reach the store', async () => {
    store.takeChanges();
    api.add(service('api', '10.96.0.50', 80));
    await waitFor('add', () => has('api'));
    api.update(service('api', '10.96.0.50', 81));
    await waitFor('update', () =>
      store
        .objects()
        .some(
          (o) =>
            (o.metadata as { name: string }).name === 'api' &&
            JSON.stringify(o.spec).includes('"port":81'),
        ),
    );
    assert.deepEqual([...store.takeChanges().services], ['default/api']);
    api.remove(service('api', '10.96.0.50', 81));
    await waitFor('delete', () => !has('api'));
  });

  it('410 Gone relists at once and catches up', async () => {
    const lists = api.count('list /api/v1/services');
    api.expireWatches();
    api.add(service('after-expiry', '10.96.0.60', 80));
    await waitFor('relist', () => api.count('list /api/v1/services') === lists + 1);
    await waitFor('object added during the gap', () => has('after-expiry'));
    await waitFor('watches back', () => api.openWatches() === 4);
  });

  it('a dropped connection backs off, then resumes the watch without a relist', async () => {
    const lists = api.count('list /api/v1/services');
    const watches = api.count('watch /api/v1/services');
    api.dropWatches();
    await waitFor('backoff', () => svcReflector().state === 'backoff');
    api.add(service('during-outage', '10.96.0.61', 80));
    // nothing retries before the backoff delay passes
    await settle();
    assert.equal(api.count('watch /api/v1/services'), watches);
    await clock.advance(1000);
    await waitFor('resumed watch', () => api.count('watch /api/v1/services') === watches + 1);
    await waitFor('missed event replayed', () => has('during-outage'));
    assert.equal(api.count('list /api/v1/services'), lists);
    assert.ok(lines.some((l) => l.msg === 'list/watch failed' && l.kind === 'Service'));
  });

  it('a silent watch is restarted by the staleness timer and picks up what it missed', async () => {
    await waitFor('watches back', () => api.openWatches() === 4);
    const watches = api.count('watch /api/v1/services');
    api.muteWatches();
    api.add(service('while-silent', '10.96.0.62', 80));
    await settle();
    assert.equal(has('while-silent'), false);
    await clock.advance(60_000);
    await waitFor('restarted watch', () => api.count('watch /api/v1/services') === watches + 1);
    await waitFor('missed event', () => has('while-silent'));
    assert.ok(lines.some((l) => l.msg === 'watch silent past the staleness limit: restarting it'));
  });

  it('the periodic relist runs; a failing list backs off and retries', async () => {
    api.failNextList = '/api/v1/services';
    const lists = api.count('list /api/v1/services');
    // the relist falls inside this window, and so does the retry after its failure
    await clock.advance(600_000);
    await waitFor('relist, failure, retry', () => api.count('list /api/v1/services') >= lists + 2);
    await waitFor('watching again', () => svcReflector().state === 'watching');
    assert.ok(
      lines.some((l) => l.msg === 'list/watch failed' && l.kind === 'Service' && l.what === 'list'),
    );
    assert.ok(has('while-silent'));
  });
});
