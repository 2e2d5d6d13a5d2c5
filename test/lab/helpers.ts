// Shared by the lab tests: whether real namespaces and OVS can be used here, and a teardown
// that kills by recorded pid even when a test failed.

import { missingOvsBinaries } from '../../src/lab/ovs-instance.js';
import { labDown } from '../../src/lab/topology.js';

async function whyNoLab(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'lab tests need root (network namespaces, OVS daemons)';
  const missing = await missingOvsBinaries();
  if (missing.length) return `lab tests need ${missing.join(', ')} (run scripts/setup.sh)`;
  return undefined;
}

/**
 * A reason to skip, or undefined when the lab can run. Under CI (CI=true) the lab must run: a
 * skipped lab would pass CI without testing the data plane, so this throws and the file fails.
 */
export async function labSkipReason(): Promise<string | undefined> {
  const reason = await whyNoLab();
  if (reason && process.env.CI === 'true')
    throw new Error(`CI=true but the lab cannot run here: ${reason}`);
  return reason;
}

export function announceSkip(reason: string): void {
  process.stderr.write(`\n*** SKIPPING lab tests: ${reason} ***\n\n`);
}

export async function teardown(prefix: string): Promise<void> {
  const report = await labDown(prefix);
  if (report.survivors.length) {
    throw new Error(`lab ${prefix}: pids ${report.survivors} survived teardown`);
  }
}
