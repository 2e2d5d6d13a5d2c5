// What a node's host (outside OVS) must look like for the pipeline's paths to work. Pure data:
// the Linux and Windows backends turn it into commands.

export interface HostRoute {
  /** "10.96.0.10/32" */
  destination: string;
  /** interface the route points at */
  device: string;
  /** next hop; absent = on-link */
  via?: string;
  /** preferred source address */
  source?: string;
  why: string;
}

export interface HostNeighbor {
  device: string;
  ip: string;
  mac: string;
  why: string;
}

/** Interface-level switches. `forwarding`, `acceptLocal`, `routeLocalnet` are IPv4 per-interface. */
export interface HostInterfaceSetting {
  device: string;
  forwarding?: boolean;
  acceptLocal?: boolean;
  rpFilter?: 0 | 1 | 2;
  sendRedirects?: boolean;
  routeLocalnet?: boolean;
  txChecksumOffload?: boolean;
  why: string;
}

/**
 * Host-originated NodePort access: the host's own stack delivers NodeIP:port locally, so the
 * host must DNAT it to the virtual IP (and SNAT to the gateway IP) to send it through OVS.
 */
export interface HostNodePortRedirect {
  protocol: 'TCP' | 'UDP' | 'SCTP';
  port: number;
  /** local destinations to catch: node IPs and 127.0.0.1 */
  addresses: string[];
  toIP: string;
  /** source address the redirected packets leave with */
  snatIP: string;
  device: string;
  /**
   * Pods reach this node's own IP:port through the gateway and the host forwards them: those
   * packets are redirected too (and SNATed to snatIP like the host's own, so the reply comes
   * back through the host).
   */
  forwarded?: { device: string; addresses: string[] };
}

export interface HostPlan {
  nodeName: string;
  routes: HostRoute[];
  neighbors: HostNeighbor[];
  interfaces: HostInterfaceSetting[];
  nodePortRedirects: HostNodePortRedirect[];
}
