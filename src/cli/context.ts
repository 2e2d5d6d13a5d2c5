// Shared CLI plumbing: where the bundled example lives, and loading cluster + config + node.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, loadClusterFile, readObjectsFile, CONFIG_KIND } from '../cluster/load.js';
import { parseConfig } from '../config/config.js';
import { pickNodeName, resolveNode } from '../config/resolve.js';
import type { SvcflowConfig, NodeDataplane } from '../config/types.js';
import type { ClusterState, Rejection } from '../model/types.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EXAMPLE_CLUSTER = join(REPO_ROOT, 'examples', 'two-node', 'cluster.yaml');
export const EXAMPLE_CONFIG = join(REPO_ROOT, 'examples', 'two-node', 'svcflow.yaml');

export interface Loaded {
  state: ClusterState;
  config: SvcflowConfig;
  rejections: Rejection[];
  clusterPath: string;
}

/** Cluster file (default: the bundled example) + optional config file. */
export function loadInputs(clusterPath?: string, configPath?: string): Loaded {
  const path = clusterPath ?? EXAMPLE_CLUSTER;
  const loaded = loadClusterFile(path);
  const docs = [...loaded.configDocs];
  const cfgPath = configPath ?? (clusterPath ? undefined : EXAMPLE_CONFIG);
  if (cfgPath) {
    const objs = readObjectsFile(cfgPath);
    const bad = objs.find((o) => o.kind !== CONFIG_KIND);
    if (bad)
      throw new InputError(
        `${cfgPath}: expected only kind ${CONFIG_KIND} documents, found ${String(bad.kind)}`,
      );
    docs.push(...objs);
  }
  return {
    state: loaded.state,
    config: parseConfig(docs),
    rejections: loaded.rejections,
    clusterPath: path,
  };
}

export function nodeOf(loaded: Loaded, nodeName?: string): NodeDataplane {
  return resolveNode(loaded.state, loaded.config, pickNodeName(loaded.state, nodeName));
}

export function formatRejection(r: Rejection): string {
  const obj = r.namespace ? `${r.namespace}/${r.name}` : r.name;
  return `rejected ${r.kind} ${obj}: ${r.field}: ${r.reason}`;
}
