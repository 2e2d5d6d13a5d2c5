// Normalised Kubernetes state: only what svcflow needs, already validated.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NodeInfo {
  name: string;
  /** InternalIP addresses first (the first is the main node IP), then ExternalIPs. */
  addresses: string[];
  podCIDR?: string;
}

export interface PodInfo {
  namespace: string;
  name: string;
  nodeName?: string;
  ip?: string;
  hostNetwork: boolean;
  labels: Record<string, string>;
}

export interface ServicePort {
  name: string;
  protocol: Protocol;
  port: number;
  targetPort: number | string;
  nodePort?: number;
}

export type TrafficPolicy = 'Cluster' | 'Local';

export interface ServiceInfo {
  namespace: string;
  name: string;
  type: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  /** IPv4 ClusterIPs; empty for headless Services. */
  clusterIPs: string[];
  ports: ServicePort[];
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  /** ClientIP affinity timeout in seconds, or undefined for no affinity. */
  affinityTimeoutSeconds?: number;
  /** spec.externalIPs and status.loadBalancer.ingress IPs (not programmed yet: reported) */
  externalAddresses?: string[];
}

export interface EndpointAddress {
  ip: string;
  nodeName?: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** namespace/name of the backing Pod, when the slice names one */
  targetPod?: string;
  /** position in the slice's endpoints list, for error messages */
  index?: number;
}

export interface EndpointSliceInfo {
  namespace: string;
  name: string;
  serviceName: string;
  ports: { name: string; protocol: Protocol; port: number }[];
  endpoints: EndpointAddress[];
}

export interface ClusterState {
  nodes: NodeInfo[];
  services: ServiceInfo[];
  endpointSlices: EndpointSliceInfo[];
  pods: PodInfo[];
}

/** A problem with one input object; that object is skipped, everything else still compiles. */
export interface Rejection {
  kind: string;
  namespace?: string;
  name: string;
  field: string;
  reason: string;
}
