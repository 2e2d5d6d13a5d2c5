// The node's data plane at run time: resolveNode's offline answer, with the local pods replaced
// by what OVSDB reports when that is known (the ports and MACs that really exist).
import { resolveNode } from '../config/resolve.js';
import type { LocalPod, NodeDataplane, SvcflowConfig } from '../config/types.js';
import type { ClusterState } from '../model/types.js';

export interface ResolveOptions {
  /** pods read from OVSDB; undefined = keep the offline derivation */
  localPods?: LocalPod[];
}

export function resolveNodeLive(
  state: ClusterState,
  config: SvcflowConfig,
  nodeName: string,
  opts: ResolveOptions = {},
): NodeDataplane {
  const dp = resolveNode(state, config, nodeName);
  if (!opts.localPods) return dp;
  // a port claiming the gateway's or uplink's number, or the gateway IP, is not a pod
  const reserved = new Set([dp.gatewayPort, dp.uplinkPort]);
  const seen = new Set<string>();
  const localPods = opts.localPods.filter((p) => {
    if (reserved.has(p.ofport) || p.ip === dp.gatewayIP || seen.has(p.ip)) return false;
    seen.add(p.ip);
    return true;
  });
  return { ...dp, localPods };
}
