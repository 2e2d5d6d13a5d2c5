// Loads the bundled example and compiles a node, for tests.
import { loadInputs } from '../../src/cli/context.js';
import { resolveNode } from '../../src/config/resolve.js';
import { compileNode } from '../../src/pipeline/compile.js';
import { loadClusterText } from '../../src/cluster/load.js';
import { parseConfig } from '../../src/config/config.js';
import type { Flow } from '../../src/openflow/types.js';
import { renderMatch, renderActions } from '../../src/openflow/render.js';
import { tableNo, type TableName } from '../../src/pipeline/tables.js';

export function example(node = 'node-a') {
  const loaded = loadInputs();
  const dp = resolveNode(loaded.state, loaded.config, node);
  return { ...loaded, dp, compiled: compileNode(loaded.state, dp) };
}

export function compileText(yaml: string, node: string) {
  const loaded = loadClusterText(yaml, 'test');
  const config = parseConfig(loaded.configDocs);
  const dp = resolveNode(loaded.state, config, node);
  return { ...loaded, dp, compiled: compileNode(loaded.state, dp) };
}

/** Flows of a table whose match text contains every given fragment. */
export function find(flows: Flow[], table: TableName, ...fragments: string[]): Flow[] {
  return flows.filter(
    (f) => f.table === tableNo(table) && fragments.every((x) => renderMatch(f.match).includes(x)),
  );
}

export const actionsText = (f: Flow) => renderActions(f.actions);
