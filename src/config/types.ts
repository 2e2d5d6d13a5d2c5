// Data-plane settings that Kubernetes does not carry. Every field has a documented default
// (see docs/config.md); a cluster dump compiles without any svcflow config document.

export interface CtZones {
  /** NodePort address → virtual IP DNAT (the seeds' DnatCTZone) */
  nodePortDnat: number;
  /** NodePort source NAT to the gateway IP (the seeds' SnatCTZone) */
  snat: number;
  /** Service endpoint DNAT and all pod/gateway connections */
  service: number;
}

/** Per-node overrides; anything unset is derived deterministically. */
export interface NodeOverrides {
  gatewayMAC?: string;
  /** Pod ofport / MAC by "namespace/name" (offline compile; at run time OVSDB is the source). */
  pods?: Record<string, { ofport?: number; mac?: string }>;
}

export interface SvcflowConfig {
  bridge: string;
  gatewayInterface: string;
  /** the host's name for the uplink NIC (checksum offload is turned off on it) */
  uplinkInterface: string;
  gatewayPort: number;
  uplinkPort: number;
  /** NodePort traffic is DNATed to this address before load balancing. */
  virtualIP: string;
  /** Source address given to gateway-IP traffic delivered to a hostNetwork endpoint on this node. */
  hostReturnIP: string;
  /** MAC the ARP responder answers with for virtual addresses and ClusterIPs. */
  virtualMAC: string;
  ctZones: CtZones;
  /**
   * Source ports the NodePort SNAT to the gateway IP may use. Disjoint from the host's
   * ephemeral range, because the host also sources connections from the gateway IP (host →
   * ClusterIP, host → NodePort) and the two would otherwise collide in the service zone.
   */
  snatPortRange: [number, number];
  encapMode: 'noEncap';
  /** CIDRs, or "primary"; empty = every node address answers NodePorts. */
  nodePortAddresses: string[];
  /** First ofport handed to pods when compiling offline. */
  firstPodPort: number;
  nodes: Record<string, NodeOverrides>;
}

/** Everything the compiler needs about the node it compiles for, fully resolved. */
export interface LocalPod {
  namespace: string;
  name: string;
  ip: string;
  mac: string;
  ofport: number;
}

export interface PeerNode {
  name: string;
  /** main node IP: next hop for the peer's pod CIDR */
  ip: string;
  addresses: string[];
  podCIDR?: string;
}

export interface NodeDataplane {
  nodeName: string;
  bridge: string;
  gatewayInterface: string;
  uplinkInterface: string;
  mainIP: string;
  /** every node address, main first */
  nodeIPs: string[];
  /** addresses that answer NodePorts */
  nodePortIPs: string[];
  podCIDR: string;
  gatewayIP: string;
  gatewayMAC: string;
  gatewayPort: number;
  uplinkPort: number;
  virtualIP: string;
  hostReturnIP: string;
  virtualMAC: string;
  ctZones: CtZones;
  snatPortRange: [number, number];
  localPods: LocalPod[];
  peers: PeerNode[];
}
