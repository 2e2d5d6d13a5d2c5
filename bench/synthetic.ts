// Synthetic clusters for benchmarks: N Services × E endpoints spread over a few nodes.
import type {
  ClusterState,
  ServiceInfo,
  EndpointSliceInfo,
  NodeInfo,
  PodInfo,
} from '../src/model/types.js';
import { intToIp } from '../src/net/ipv4.js';

export function syntheticCluster(
  services: number,
  endpointsPerService: number,
  nodes = 10,
): ClusterState {
  const nodeList: NodeInfo[] = [];
  for (let n = 0; n < nodes; n++)
    nodeList.push({
      name: `node-${n}`,
      addresses: [`192.168.${100 + n}.1`],
      podCIDR: `10.${n + 1}.0.0/16`,
    });
  const pods: PodInfo[] = [];
  const svcs: ServiceInfo[] = [];
  const slices: EndpointSliceInfo[] = [];
  let podSeq = 0;
  for (let s = 0; s < services; s++) {
    const name = `svc-${s}`;
    const nodePort = s % 5 === 0 && s / 5 < 2700 ? 30000 + s / 5 : undefined;
    svcs.push({
      namespace: 'bench',
      name,
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIPs: [intToIp(((10 << 24) | (96 << 16)) + s + 1)],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort }],
      externalTrafficPolicy: s % 10 === 0 ? 'Local' : 'Cluster',
      internalTrafficPolicy: 'Cluster',
    });
    const endpoints = [];
    for (let e = 0; e < endpointsPerService; e++) {
      const n = (s + e) % nodes;
      const seq = podSeq++;
      const ip = `10.${n + 1}.${(seq >> 8) & 255}.${seq & 255 || 1}`;
      const podName = `pod-${seq}`;
      if (n === 0)
        pods.push({
          namespace: 'bench',
          name: podName,
          nodeName: 'node-0',
          ip,
          hostNetwork: false,
          labels: {},
        });
      endpoints.push({
        ip,
        nodeName: `node-${n}`,
        ready: true,
        serving: true,
        terminating: false,
        targetPod: `bench/${podName}`,
      });
    }
    slices.push({
      namespace: 'bench',
      name: `${name}-1`,
      serviceName: name,
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
      endpoints,
    });
  }
  return { nodes: nodeList, services: svcs, endpointSlices: slices, pods };
}
