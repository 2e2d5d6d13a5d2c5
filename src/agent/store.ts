// The agent's copy of the raw cluster objects, and what changed since the last sync. Change
// hints are per Service (itself or one of its EndpointSlices), per Node, and "local pods";
// the desired-state builder turns them into the set of Services to recompile.

import { KINDS, type Kind, type RawObject, type SourceEvent } from './source.js';

export interface Changes {
  /** "namespace/name" of Services whose object or EndpointSlices changed */
  services: Set<string>;
  /** names of Nodes whose object changed */
  nodes: Set<string>;
  pods: boolean;
}

export const emptyChanges = (): Changes => ({ services: new Set(), nodes: new Set(), pods: false });

const isObj = (v: unknown): v is RawObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const KIND_SET = new Set<string>(KINDS);
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface Entry {
  obj: RawObject;
  /** serialised form: an update that changes nothing is not a change */
  json: string;
}

function ident(o: RawObject): { kind: Kind; namespace: string; name: string } | undefined {
  if (typeof o.kind !== 'string' || !KIND_SET.has(o.kind)) return undefined;
  const m = isObj(o.metadata) ? o.metadata : undefined;
  if (!m || typeof m.name !== 'string' || m.name === '') return undefined;
  const namespace = typeof m.namespace === 'string' && m.namespace !== '' ? m.namespace : 'default';
  return { kind: o.kind as Kind, namespace: o.kind === 'Node' ? '' : namespace, name: m.name };
}

/** The Service an object belongs to, for change hints. */
function serviceOf(kind: Kind, namespace: string, name: string, o: RawObject): string | undefined {
  if (kind === 'Service') return `${namespace}/${name}`;
  if (kind !== 'EndpointSlice') return undefined;
  const labels = isObj(o.metadata) && isObj(o.metadata.labels) ? o.metadata.labels : {};
  const svc = labels[SERVICE_NAME_LABEL];
  return typeof svc === 'string' ? `${namespace}/${svc}` : undefined;
}

export class ObjectStore {
  private readonly byKey = new Map<string, Entry>();
  private readonly kindKeys = new Map<string, Set<string>>();
  private readonly synced = new Set<Kind>();
  private changes = emptyChanges();
  /** store keys ("Kind/namespace/name") added, changed or removed since the last take */
  private changedKeys = new Set<string>();
  /** objects dropped on arrival because they could not even be identified */
  unidentified = 0;

  /** Apply one event; returns true when something the agent cares about changed. */
  apply(ev: SourceEvent): boolean {
    if (ev.type === 'snapshot') return this.replace(ev.kinds, ev.objects);
    if (!isObj(ev.object)) {
      this.unidentified++;
      return false;
    }
    const id = ident(ev.object);
    if (!id) {
      this.unidentified++;
      return false;
    }
    const key = `${id.kind}/${id.namespace}/${id.name}`;
    if (ev.type === 'delete') return this.remove(key);
    return this.put(key, ev.object);
  }

  /** True once every kind has been delivered by at least one snapshot. */
  get ready(): boolean {
    return KINDS.every((k) => this.synced.has(k));
  }

  objects(): RawObject[] {
    return [...this.byKey.values()].map((e) => e.obj);
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The object under a store key, if present. */
  get(key: string): RawObject | undefined {
    return this.byKey.get(key)?.obj;
  }

  /** Store keys of one kind. */
  keysOf(kind: Kind): Iterable<string> {
    return this.kindKeys.get(kind) ?? [];
  }

  /** Store keys touched since the last call (for per-object caches downstream). */
  takeChangedKeys(): Set<string> {
    const c = this.changedKeys;
    this.changedKeys = new Set();
    return c;
  }

  /** Hand over the accumulated change hints and start a new set. */
  takeChanges(): Changes {
    const c = this.changes;
    this.changes = emptyChanges();
    return c;
  }

  /** Merge hints back (a sync that failed before using them). */
  giveBack(c: Changes, keys?: Set<string>): void {
    for (const k of keys ?? []) this.changedKeys.add(k);
    for (const s of c.services) this.changes.services.add(s);
    for (const n of c.nodes) this.changes.nodes.add(n);
    this.changes.pods ||= c.pods;
  }

  private replace(kinds: readonly Kind[], objects: RawObject[]): boolean {
    const wanted = new Set<string>(kinds);
    const fresh = new Map<string, RawObject>();
    for (const o of objects) {
      const id = isObj(o) ? ident(o) : undefined;
      if (!id || !wanted.has(id.kind)) {
        if (!id) this.unidentified++;
        continue;
      }
      fresh.set(`${id.kind}/${id.namespace}/${id.name}`, o);
    }
    let changed = false;
    for (const key of [...this.byKey.keys()]) {
      const kind = key.slice(0, key.indexOf('/'));
      if (wanted.has(kind) && !fresh.has(key)) changed = this.remove(key) || changed;
    }
    for (const [key, o] of fresh) changed = this.put(key, o) || changed;
    for (const k of kinds) this.synced.add(k);
    return changed;
  }

  private put(key: string, obj: RawObject): boolean {
    let json: string;
    try {
      json = JSON.stringify(obj);
    } catch {
      this.unidentified++;
      return false;
    }
    const old = this.byKey.get(key);
    if (old && old.json === json) return false;
    this.byKey.set(key, { obj, json });
    const kind = key.slice(0, key.indexOf('/'));
    const set = this.kindKeys.get(kind) ?? new Set<string>();
    set.add(key);
    this.kindKeys.set(kind, set);
    if (old) this.hint(key, old.obj);
    this.hint(key, obj);
    return true;
  }

  private remove(key: string): boolean {
    const old = this.byKey.get(key);
    if (!old) return false;
    this.byKey.delete(key);
    this.kindKeys.get(key.slice(0, key.indexOf('/')))?.delete(key);
    this.hint(key, old.obj);
    return true;
  }

  private hint(key: string, obj: RawObject): void {
    this.changedKeys.add(key);
    const [kind, namespace, ...rest] = key.split('/');
    const name = rest.join('/');
    if (kind === 'Node') this.changes.nodes.add(name);
    else if (kind === 'Pod') this.changes.pods = true;
    else {
      const svc = serviceOf(kind as Kind, namespace, name, obj);
      if (svc) this.changes.services.add(svc);
    }
  }
}
