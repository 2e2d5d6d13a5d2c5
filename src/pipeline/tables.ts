// The pipeline declared as data: every table with its number, stage and what a miss does.
// Numbers follow the design notes where they name one; the rest fill the gaps in order.

export type Stage =
  | 'classify'
  | 'arp'
  | 'validate'
  | 'dispatch'
  | 'nodeport'
  | 'conntrack'
  | 'service'
  | 'routing'
  | 'commit'
  | 'output';

export type MissAction = { kind: 'drop' } | { kind: 'goto'; table: TableName } | { kind: 'local' };

export interface TableSpec {
  name: TableName;
  number: number;
  stage: Stage;
  miss: MissAction;
  purpose: string;
}

export type TableName =
  | 'Classifier'
  | 'ArpResponder'
  | 'SpoofGuard'
  | 'SourceDispatch'
  | 'Uplink'
  | 'NodePortFilter1'
  | 'NodePortFilter2'
  | 'Dnat'
  | 'PostDnat'
  | 'Snat'
  | 'PostSnat'
  | 'UplinkToHost'
  | 'Conntrack'
  | 'ConntrackState'
  | 'SvcDnat'
  | 'ServiceLB'
  | 'EndpointDnat'
  | 'L3Forwarding'
  | 'ConntrackCommit'
  | 'L2ForwardingOut';

export const TABLES: readonly TableSpec[] = [
  {
    name: 'Classifier',
    number: 0,
    stage: 'classify',
    miss: { kind: 'drop' },
    purpose: 'Mark the packet source (reg0) by in_port; drop IGMP.',
  },
  {
    name: 'ArpResponder',
    number: 1,
    stage: 'arp',
    miss: { kind: 'goto', table: 'SpoofGuard' },
    purpose:
      'Answer ARP for virtual IPs, ClusterIPs, the gateway and local pods; pass node ARP between uplink and LOCAL.',
  },
  {
    name: 'SpoofGuard',
    number: 2,
    stage: 'validate',
    miss: { kind: 'goto', table: 'SourceDispatch' },
    purpose: "Drop IP packets from a pod port whose MAC or IP is not that pod's.",
  },
  {
    name: 'SourceDispatch',
    number: 3,
    stage: 'dispatch',
    miss: { kind: 'drop' },
    purpose:
      'Uplink traffic to the uplink tables, LOCAL traffic out of the uplink, the rest to conntrack.',
  },
  {
    name: 'Uplink',
    number: 5,
    stage: 'dispatch',
    miss: { kind: 'local' },
    purpose: 'Traffic from the uplink: local pod CIDR to conntrack, IPv4 to the NodePort filters.',
  },
  {
    name: 'NodePortFilter1',
    number: 6,
    stage: 'nodeport',
    miss: { kind: 'goto', table: 'UplinkToHost' },
    purpose: 'Is the destination an address that answers NodePorts?',
  },
  {
    name: 'NodePortFilter2',
    number: 7,
    stage: 'nodeport',
    miss: { kind: 'goto', table: 'UplinkToHost' },
    purpose: 'Is the destination port a NodePort? Then enter the NodePort DNAT zone.',
  },
  {
    name: 'Dnat',
    number: 8,
    stage: 'nodeport',
    miss: { kind: 'drop' },
    purpose:
      'Request: DNAT node address → virtual IP (zone nodePortDnat). Reply: un-DNATed, hand to the host.',
  },
  {
    name: 'PostDnat',
    number: 9,
    stage: 'nodeport',
    miss: { kind: 'drop' },
    purpose: 'Request: enter the SNAT zone.',
  },
  {
    name: 'Snat',
    number: 11,
    stage: 'nodeport',
    miss: { kind: 'drop' },
    purpose:
      'Request: SNAT to the gateway IP for externalTrafficPolicy Cluster. Reply: enter the DNAT zone.',
  },
  {
    name: 'PostSnat',
    number: 12,
    stage: 'nodeport',
    miss: { kind: 'drop' },
    purpose: 'Request: on to service conntrack. Reply: enter the SNAT zone to un-SNAT.',
  },
  {
    name: 'UplinkToHost',
    number: 13,
    stage: 'dispatch',
    miss: { kind: 'drop' },
    purpose:
      'Uplink traffic for a node address (and broadcast) goes to LOCAL; anything else is dropped.',
  },
  {
    name: 'Conntrack',
    number: 30,
    stage: 'conntrack',
    miss: { kind: 'drop' },
    purpose: 'Track every IPv4 packet in the service zone, applying existing NAT.',
  },
  {
    name: 'ConntrackState',
    number: 31,
    stage: 'conntrack',
    miss: { kind: 'goto', table: 'L3Forwarding' },
    purpose: 'New connections go to service load balancing; the rest straight to routing.',
  },
  {
    name: 'SvcDnat',
    number: 40,
    stage: 'service',
    miss: { kind: 'goto', table: 'ServiceLB' },
    purpose: 'Session affinity: learned client → endpoint choices are applied here.',
  },
  {
    name: 'ServiceLB',
    number: 41,
    stage: 'service',
    miss: { kind: 'goto', table: 'L3Forwarding' },
    purpose: 'Match a Service address and port; pick an endpoint with a select group.',
  },
  {
    name: 'EndpointDnat',
    number: 42,
    stage: 'service',
    miss: { kind: 'drop' },
    purpose: 'DNAT to the chosen endpoint and commit with the Service ct_mark.',
  },
  {
    name: 'L3Forwarding',
    number: 70,
    stage: 'routing',
    miss: { kind: 'drop' },
    purpose:
      'Choose the output port and MACs by destination; send NodePort replies back through the NodePort zones.',
  },
  {
    name: 'ConntrackCommit',
    number: 105,
    stage: 'commit',
    miss: { kind: 'goto', table: 'L2ForwardingOut' },
    purpose: 'Commit new non-Service connections exactly once (the ct_mark conflict fix).',
  },
  {
    name: 'L2ForwardingOut',
    number: 110,
    stage: 'output',
    miss: { kind: 'drop' },
    purpose: 'Output to the port chosen in reg1.',
  },
];

const byName = new Map(TABLES.map((t) => [t.name, t]));

/** Table number by name; the single place numbers are looked up. */
export function tableNo(name: TableName): number {
  const t = byName.get(name);
  if (!t) throw new Error(`unknown table ${name}`);
  return t.number;
}
