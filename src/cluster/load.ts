// Reads a cluster file: multi-document YAML or a v1 List, exactly as `kubectl get … -o yaml`
// prints it. An optional svcflow config document (kind SvcflowConfig) may sit in the same file.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { validateObjects, type ValidationResult } from './validate.js';

export const CONFIG_KIND = 'SvcflowConfig';

/** Input that cannot be read at all: reported as one line, exit code 2. */
export class InputError extends Error {}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface LoadedCluster extends ValidationResult {
  /** raw svcflow config documents found in the file, in order */
  configDocs: Obj[];
}

/** Parse YAML text into top-level objects, flattening `kind: List` (and *List) documents. */
export function parseObjects(text: string, source: string): Obj[] {
  const docs = parseAllDocuments(text, { uniqueKeys: false });
  const out: Obj[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      throw new InputError(
        `${source}: not valid YAML (document ${i + 1}): ${e.message.split('\n')[0]}`,
      );
    }
    const v: unknown = doc.toJS({ maxAliasCount: 100 });
    if (v === null || v === undefined) return;
    if (!isObj(v))
      throw new InputError(
        `${source}: document ${i + 1} is not a Kubernetes object (got ${Array.isArray(v) ? 'a list' : typeof v})`,
      );
    if (typeof v.kind === 'string' && v.kind.endsWith('List') && Array.isArray(v.items)) {
      for (const item of v.items) if (isObj(item)) out.push(item);
    } else out.push(v);
  });
  return out;
}

export function loadClusterText(text: string, source = '<input>'): LoadedCluster {
  const objects = parseObjects(text, source);
  const configDocs = objects.filter((o) => o.kind === CONFIG_KIND);
  const result = validateObjects(objects.filter((o) => o.kind !== CONFIG_KIND));
  return { ...result, configDocs };
}

/** A file's text, or an InputError naming the file and why it cannot be read. */
function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

export function loadClusterFile(path: string): LoadedCluster {
  return loadClusterText(readText(path), path);
}

export function readObjectsFile(path: string): Obj[] {
  return parseObjects(readText(path), path);
}
