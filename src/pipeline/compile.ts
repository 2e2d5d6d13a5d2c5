// The pure core: (cluster state, one node's data plane) → that node's complete OpenFlow program.
// Every flow is declared against a named table and named register fields; docs/pipeline.md
// walks through each traffic path hop by hop.
import type { Action, Flow, Group, MatchField, OpenFlowProgram } from '../openflow/types.js';
import type { ClusterState } from '../model/types.js';
import type { NodeDataplane } from '../config/types.js';
import { ipToInt } from '../net/ipv4.js';
import { TABLES, tableNo, type TableName } from './tables.js';
import {
  Direction,
  EndpointIP,
  EndpointPort,
  Hairpin,
  NodePortDirection,
  PacketSource,
  ServiceCtMark,
  Source,
  TargetPort,
  regMatch,
} from './registers.js';
import { makeCookie, objectId, type CategoryName } from './cookies.js';
import { a, m } from './match.js';
import { planServices, type Endpoint, type ServicePortPlan } from './services.js';

export interface CompileOptions {
  /** cookie round (16 bits); the agent bumps it on every restart */
  round?: number;
}

export interface CompiledNode extends OpenFlowProgram {
  /** per Service port: the groups it uses, for diagnostics and benchmarks */
  servicePorts: { service: string; port: string; groups: number[]; endpoints: number }[];
}

const T = tableNo;

/**
 * Hands out select-group ids: a stable hash of the key, probing past collisions. The same key
 * keeps its id for as long as it is held, so recompiling one Service never renumbers another.
 */
export class GroupIdAllocator {
  private readonly byKey = new Map<string, number>();
  private readonly used = new Set<number>();

  allocate(key: string): number {
    const held = this.byKey.get(key);
    if (held !== undefined) return held;
    let id = Number(objectId(key) % 0x0fffffffn) + 1;
    while (this.used.has(id)) id = (id % 0x0fffffff) + 1;
    this.used.add(id);
    this.byKey.set(key, id);
    return id;
  }

  /** Give back every id whose key starts with `prefix` (a deleted Service). */
  releasePrefix(prefix: string): void {
    for (const [k, id] of this.byKey)
      if (k.startsWith(prefix)) {
        this.byKey.delete(k);
        this.used.delete(id);
      }
  }
}

class ProgramBuilder {
  readonly flows: Flow[] = [];
  readonly groups: Group[] = [];
  constructor(
    private readonly round: number,
    private readonly alloc: GroupIdAllocator = new GroupIdAllocator(),
  ) {}

  private readonly cookies = new Map<string, bigint>();
  // Flows of one object are generated together: remember the last cookie.
  private lastCategory?: CategoryName;
  private lastKey?: string;
  private lastCookie = 0n;

  cookie(category: CategoryName, key: string): bigint {
    if (category === this.lastCategory && key === this.lastKey) return this.lastCookie;
    let c: bigint | undefined;
    // Endpoint keys are unique per flow: caching them would only cost memory.
    if (category === 'endpoint') c = makeCookie(this.round, category, objectId(key));
    else {
      const k = category + '|' + key;
      c = this.cookies.get(k);
      if (c === undefined) {
        c = makeCookie(this.round, category, category === 'base' ? 0n : objectId(key));
        this.cookies.set(k, c);
      }
    }
    this.lastCategory = category;
    this.lastKey = key;
    this.lastCookie = c;
    return c;
  }

  flow(
    table: TableName,
    priority: number,
    match: MatchField[],
    actions: Action[],
    category: CategoryName = 'base',
    key = '',
  ): void {
    this.flows.push({
      table: T(table),
      priority,
      cookie: this.cookie(category, key),
      match,
      actions,
    });
  }

  groupId(key: string): number {
    return this.alloc.allocate(key);
  }
}

/** The ARP reply OVS builds in place: swap addresses, answer with `mac`, send back where it came from. */
function arpReply(ip: string, mac: string): Action[] {
  return [
    a.move('eth_src', 'eth_dst'),
    a.set('eth_src', mac),
    ARP_OP_REPLY,
    a.move('arp_sha', 'arp_tha'),
    a.set('arp_sha', mac),
    a.move('arp_spa', 'arp_tpa'),
    a.set('arp_spa', ip),
    BACK_TO_IN_PORT,
  ];
}

const ARP_OP_REPLY = Object.freeze(a.set('arp_op', 2));
const BACK_TO_IN_PORT = Object.freeze(a.output('IN_PORT'));

function baseFlows(b: ProgramBuilder, dp: NodeDataplane): void {
  const src = (s: number) => regMatch(PacketSource, s);
  const toGateway: Action[] = [
    a.set('eth_src', dp.virtualMAC),
    a.set('eth_dst', dp.gatewayMAC),
    a.load(TargetPort, dp.gatewayPort),
  ];

  // Classifier: name the source, drop IGMP (the design notes saw it burn CPU).
  b.flow('Classifier', 220, [m.ip(), m.proto('igmp')], [a.drop()]);
  b.flow(
    'Classifier',
    200,
    [m.inPort(dp.uplinkPort)],
    [a.load(PacketSource, Source.uplink), a.goto(T('ArpResponder'))],
  );
  b.flow(
    'Classifier',
    200,
    [m.inPort(dp.gatewayPort)],
    [a.load(PacketSource, Source.gateway), a.goto(T('ArpResponder'))],
  );
  b.flow(
    'Classifier',
    200,
    [m.inPort('LOCAL')],
    [a.load(PacketSource, Source.bridge), a.goto(T('ArpResponder'))],
  );

  // ARP: node addresses live on LOCAL and are answered by the host through the uplink;
  // everything inside the node (gateway, pods, virtual IPs) is answered by OVS itself.
  for (const ip of dp.nodeIPs)
    b.flow('ArpResponder', 210, [m.arp(), src(Source.uplink), m.arpTpa(ip)], [a.output('LOCAL')]);
  b.flow('ArpResponder', 205, [m.arp(), src(Source.uplink), m.arpOp(2)], [a.output('LOCAL')]);
  // Above the per-pod answers (200): the wire never learns pod MACs from us.
  b.flow('ArpResponder', 202, [m.arp(), src(Source.uplink)], [a.drop()]);
  b.flow(
    'ArpResponder',
    200,
    [m.arp(), m.arpOp(1), src(Source.localPod), m.arpTpa(dp.gatewayIP)],
    arpReply(dp.gatewayIP, dp.gatewayMAC),
  );
  for (const ip of [dp.virtualIP, dp.hostReturnIP])
    b.flow(
      'ArpResponder',
      200,
      [m.arp(), m.arpOp(1), src(Source.gateway), m.arpTpa(ip)],
      arpReply(ip, dp.virtualMAC),
    );

  // SpoofGuard: a pod may only send from its own MAC and IP (per-pod flows below).
  b.flow('SpoofGuard', 190, [src(Source.localPod)], [a.drop()]);

  // SourceDispatch
  b.flow('SourceDispatch', 200, [src(Source.uplink)], [a.goto(T('Uplink'))]);
  b.flow('SourceDispatch', 200, [src(Source.bridge)], [a.output(dp.uplinkPort)]);
  // A hostNetwork endpoint on this node answered the hostReturnIP: restore the gateway IP the
  // connection really belongs to before conntrack un-NATs it.
  b.flow(
    'SourceDispatch',
    210,
    [m.ip(), src(Source.gateway), m.nwDst(dp.hostReturnIP)],
    [a.set('ip_dst', dp.gatewayIP), a.goto(T('Conntrack'))],
  );
  // A pod's packet to the gateway IP may be the reply of a hairpin connection (see podFlows):
  // un-SNAT it in the SNAT zone before the service zone un-DNATs it. Anything else passes the
  // SNAT zone unchanged.
  b.flow(
    'SourceDispatch',
    205,
    [m.ip(), src(Source.localPod), m.nwDst(dp.gatewayIP)],
    [{ kind: 'ct', commit: false, zone: dp.ctZones.snat, nat: 'existing', table: T('Conntrack') }],
  );
  b.flow('SourceDispatch', 190, [m.ip()], [a.goto(T('Conntrack'))]);
  // A pod's packet that the SNAT zone just recognised as a reply can only be a hairpin reply
  // (NodePort SNAT replies meet that zone after the service zone, as the VIP): it leaves by the
  // port it came in. Everything else reaches this table untracked or in the request direction.
  b.flow(
    'Conntrack',
    210,
    [m.ip(), src(Source.localPod), m.ct('+rpl+trk')],
    [
      a.load(Hairpin, 1),
      {
        kind: 'ct',
        commit: false,
        zone: dp.ctZones.service,
        nat: 'existing',
        table: T('ConntrackState'),
      },
    ],
  );

  // Uplink: our pods (and replies to the gateway IP) go through conntrack; other IPv4 may be a NodePort.
  b.flow('Uplink', 200, [m.ip(), m.nwDst(dp.podCIDR)], [a.goto(T('Conntrack'))]);
  b.flow('Uplink', 190, [m.ip()], [a.goto(T('NodePortFilter1'))]);

  for (const ip of dp.nodePortIPs)
    b.flow('NodePortFilter1', 200, [m.ip(), m.nwDst(ip)], [a.goto(T('NodePortFilter2'))]);

  // Only traffic for this node's own addresses reaches the host (no forwarding loops, no
  // duplicate echo replies on a promiscuous uplink).
  for (const ip of dp.nodeIPs)
    b.flow('UplinkToHost', 200, [m.ip(), m.nwDst(ip)], [a.output('LOCAL')]);
  b.flow('UplinkToHost', 200, [m.ip(), m.nwDst('255.255.255.255')], [a.output('LOCAL')]);

  // NodePort request: node address → virtual IP in the DNAT zone, then the SNAT zone.
  const z = dp.ctZones;
  const request = regMatch(NodePortDirection, Direction.request);
  const reply = regMatch(NodePortDirection, Direction.reply);
  b.flow(
    'Dnat',
    190,
    [m.ip(), m.ct('+new+trk')],
    [
      a.load(NodePortDirection, Direction.request),
      {
        kind: 'ct',
        commit: true,
        zone: z.nodePortDnat,
        nat: { type: 'dst', ip: dp.virtualIP },
        table: T('PostDnat'),
      },
    ],
  );
  b.flow(
    'Dnat',
    190,
    [m.ip(), m.ct('+est+trk')],
    [a.load(NodePortDirection, Direction.request), a.goto(T('PostDnat'))],
  );
  b.flow(
    'PostDnat',
    200,
    [m.ip(), request],
    [{ kind: 'ct', commit: false, zone: z.snat, nat: 'existing', table: T('Snat') }],
  );
  b.flow(
    'Snat',
    200,
    [m.ip(), request, m.ct('+new+trk')],
    [
      {
        kind: 'ct',
        commit: true,
        zone: z.snat,
        nat: { type: 'src', ip: dp.gatewayIP, portRange: dp.snatPortRange },
        table: T('PostSnat'),
      },
    ],
  );
  b.flow('Snat', 200, [m.ip(), request, m.ct('+est+trk')], [a.goto(T('PostSnat'))]);
  b.flow('PostSnat', 200, [m.ip(), request], [a.goto(T('Conntrack'))]);

  // NodePort reply: un-SNAT (zone snat), un-DNAT (zone nodePortDnat), then to the host, which
  // routes it out of br-int and the uplink. Replies match no ct_state: connections that were
  // never SNATed (externalTrafficPolicy Local) simply pass through the SNAT zone unchanged.
  b.flow(
    'PostSnat',
    200,
    [m.ip(), reply],
    [{ kind: 'ct', commit: false, zone: z.snat, nat: 'existing', table: T('Snat') }],
  );
  b.flow(
    'Snat',
    200,
    [m.ip(), reply],
    [{ kind: 'ct', commit: false, zone: z.nodePortDnat, nat: 'existing', table: T('Dnat') }],
  );
  b.flow('Dnat', 200, [m.ip(), reply], [...toGateway, a.goto(T('L2ForwardingOut'))]);

  // Service conntrack zone: every pod, gateway and uplink-to-pod packet.
  b.flow(
    'Conntrack',
    200,
    [m.ip()],
    [{ kind: 'ct', commit: false, zone: z.service, nat: 'existing', table: T('ConntrackState') }],
  );
  b.flow('ConntrackState', 200, [m.ip(), m.ct('+new+trk')], [a.goto(T('SvcDnat'))]);
  // A packet conntrack cannot place (a stray segment, a reply with no request) goes nowhere.
  b.flow('ConntrackState', 210, [m.ip(), m.ct('+inv+trk')], [a.drop()]);

  // L3Forwarding
  // A NodePort reply, un-DNATed back to the virtual IP: walk the NodePort zones in reverse.
  b.flow(
    'L3Forwarding',
    220,
    [m.ip(), m.ct('+rpl+trk'), m.nwSrc(dp.virtualIP)],
    [a.load(NodePortDirection, Direction.reply), a.resubmit(T('PostSnat'))],
  );
  // Gateway-IP traffic to a hostNetwork endpoint on this node: the host would answer its own
  // address locally, so present the request as coming from hostReturnIP (routed via the gateway).
  for (const ip of dp.nodeIPs)
    b.flow(
      'L3Forwarding',
      210,
      [
        m.ip(),
        m.ct('-rpl+trk'),
        m.ctMark(ServiceCtMark.value, ServiceCtMark.mask),
        m.nwSrc(dp.gatewayIP),
        m.nwDst(ip),
      ],
      [a.set('ip_src', dp.hostReturnIP), ...toGateway, a.goto(T('ConntrackCommit'))],
    );
  b.flow(
    'L3Forwarding',
    200,
    [m.ip(), m.nwDst(dp.gatewayIP)],
    [...toGateway, a.goto(T('ConntrackCommit'))],
  );
  b.flow('L3Forwarding', 190, [m.ip(), m.nwDst(dp.podCIDR)], [a.drop()]);
  // Everything else (peer pods, peer nodes, the outside) is routed by the host (noEncap).
  b.flow('L3Forwarding', 180, [m.ip()], [...toGateway, a.goto(T('ConntrackCommit'))]);

  // Commit new connections exactly once. A Service connection was already committed (with its
  // NAT and the Service ct_mark) in EndpointDnat; committing it again here is the conflict the
  // design notes saw as duplicate packets, so it skips straight to output.
  b.flow(
    'ConntrackCommit',
    210,
    [m.ip(), m.ct('+new+trk'), m.ctMark(ServiceCtMark.value, ServiceCtMark.mask)],
    [a.goto(T('L2ForwardingOut'))],
  );
  b.flow(
    'ConntrackCommit',
    200,
    [m.ip(), m.ct('+new+trk')],
    [{ kind: 'ct', commit: true, zone: z.service, table: T('L2ForwardingOut') }],
  );

  // Output. Back out of the gateway it came from needs IN_PORT (OVS drops output to in_port).
  b.flow(
    'L2ForwardingOut',
    210,
    [m.ip(), src(Source.gateway), regMatch(TargetPort, dp.gatewayPort)],
    [a.output('IN_PORT')],
  );
  b.flow('L2ForwardingOut', 220, [m.ip(), regMatch(Hairpin, 1)], [a.output('IN_PORT')]);
  b.flow('L2ForwardingOut', 200, [m.ip()], [a.outputReg(TargetPort)]);
}

function podFlows(b: ProgramBuilder, dp: NodeDataplane): void {
  const z = dp.ctZones;
  for (const pod of dp.localPods) {
    const key = `${pod.namespace}/${pod.name}`;
    // Hairpin: a pod reached itself through a Service. It would drop a packet from its own
    // address, so the request is SNATed to the gateway IP (zone snat) and leaves by IN_PORT;
    // the reply (pod → gateway IP) is un-SNATed in SourceDispatch, recognised here as pod → pod
    // itself, and un-DNATed in the service zone.
    const self = [m.nwSrc(pod.ip), m.nwDst(pod.ip)];
    b.flow(
      'L3Forwarding',
      215,
      [m.ip(), m.ct('+new+trk'), m.ctMark(ServiceCtMark.value, ServiceCtMark.mask), ...self],
      [
        a.load(Hairpin, 1),
        {
          kind: 'ct',
          commit: true,
          zone: z.snat,
          nat: { type: 'src', ip: dp.gatewayIP, portRange: dp.snatPortRange },
          setMark: SERVICE_MARK,
          table: T('L3Forwarding'),
        },
      ],
      'pod',
      key,
    );
    b.flow(
      'L3Forwarding',
      215,
      [m.ip(), m.ct('-new+trk'), ...self],
      [
        a.load(Hairpin, 1),
        { kind: 'ct', commit: false, zone: z.snat, nat: 'existing', table: T('L3Forwarding') },
      ],
      'pod',
      key,
    );
    b.flow(
      'Classifier',
      190,
      [m.inPort(pod.ofport)],
      [a.load(PacketSource, Source.localPod), a.goto(T('ArpResponder'))],
      'pod',
      key,
    );
    // Host and pods on this node ask for a pod's MAC; OVS answers.
    b.flow(
      'ArpResponder',
      200,
      [m.arp(), m.arpOp(1), m.arpTpa(pod.ip)],
      arpReply(pod.ip, pod.mac),
      'pod',
      key,
    );
    b.flow(
      'SpoofGuard',
      200,
      [m.ip(), m.inPort(pod.ofport), m.dlSrc(pod.mac), m.nwSrc(pod.ip)],
      [a.goto(T('SourceDispatch'))],
      'pod',
      key,
    );
    b.flow(
      'L3Forwarding',
      200,
      [m.ip(), m.nwDst(pod.ip)],
      [
        a.set('eth_src', dp.gatewayMAC),
        a.set('eth_dst', pod.mac),
        a.load(TargetPort, pod.ofport),
        a.goto(T('ConntrackCommit')),
      ],
      'pod',
      key,
    );
  }
}

/** The flows and groups of one Service (all its ports), plus the endpoints it needs DNAT flows for. */
function serviceFlows(
  b: ProgramBuilder,
  dp: NodeDataplane,
  plans: ServicePortPlan[],
  endpointFlows: Map<number, Endpoint>,
): CompiledNode['servicePorts'] {
  const report: CompiledNode['servicePorts'] = [];
  const arpAnswered = new Set<string>();
  const resubmitDnat = a.resubmit(T('EndpointDnat'));

  /** One select group per distinct endpoint set of a Service port (cluster and local often coincide). */
  const groupFor = (
    svcKey: string,
    objKey: string,
    variant: string,
    eps: Endpoint[],
    reuse: Map<Endpoint[], number>,
  ): number => {
    for (const [list, id] of reuse) if (sameEndpoints(list, eps)) return id;
    const id = b.groupId(`${svcKey}|${variant}`);
    reuse.set(eps, id);
    const proto = eps[0].protocol.toLowerCase();
    b.groups.push({
      id,
      type: 'select',
      cookie: b.cookie('service', objKey),
      // Per connection, like kube-proxy: OVS's default hash ignores UDP ports, which sent every
      // UDP flow between two addresses to the same endpoint. Hashed in ofproto, so it does not
      // depend on the datapath's dp_hash support.
      hashFields: ['ip_src', 'ip_dst', `${proto}_src`, `${proto}_dst`],
      buckets: eps.map((e, i) => ({
        id: i,
        weight: 100,
        actions: [a.load(EndpointIP, ipToInt(e.ip)), a.load(EndpointPort, e.port), resubmitDnat],
      })),
    });
    for (const e of eps) endpointFlows.set(endpointKey(e), e);
    return id;
  };

  const servedServices = new Set(
    plans
      .filter((p) => (p.service.internalTrafficPolicy === 'Local' ? p.local : p.cluster).length > 0)
      .map((p) => p.service),
  );
  for (const plan of plans) {
    const { service: svc, port } = plan;
    const objKey = `${svc.namespace}/${svc.name}`;
    const svcKey = `${objKey}|${port.protocol}/${port.name || port.port}`;
    const groups = new Set<number>();
    const reuse = new Map<Endpoint[], number>();
    const lb = (variant: string, eps: Endpoint[]): Action[] => {
      if (eps.length === 0) return [a.drop()]; // no endpoint: the connection is not carried
      const id = groupFor(svcKey, objKey, variant, eps, reuse);
      groups.add(id);
      return [a.group(id)];
    };
    const internal = svc.internalTrafficPolicy === 'Local' ? plan.local : plan.cluster;
    // No endpoint behind any port: no ARP answer either, so the host's connect fails fast
    // (EHOSTUNREACH) instead of waiting for a drop to time out.
    const answerArp = servedServices.has(svc);
    for (const ip of svc.clusterIPs) {
      b.flow(
        'ServiceLB',
        200,
        [m.ip(), m.proto(port.protocol), m.nwDst(ip), m.tpDst(port.port)],
        lb(svc.internalTrafficPolicy, internal),
        'service',
        objKey,
      );
      // The host reaches ClusterIPs through a route to the gateway; OVS answers its ARP.
      if (answerArp && !arpAnswered.has(ip)) {
        arpAnswered.add(ip);
        b.flow(
          'ArpResponder',
          200,
          [m.arp(), m.arpOp(1), regMatch(PacketSource, Source.gateway), m.arpTpa(ip)],
          arpReply(ip, dp.virtualMAC),
          'service',
          objKey,
        );
      }
    }
    if (port.nodePort !== undefined) {
      const np = port.nodePort;
      const proto = m.proto(port.protocol);
      b.flow(
        'NodePortFilter2',
        200,
        [m.ip(), proto, m.tpDst(np)],
        [
          {
            kind: 'ct',
            commit: false,
            zone: dp.ctZones.nodePortDnat,
            nat: 'existing',
            table: T('Dnat'),
          },
        ],
        'service',
        objKey,
      );
      // From the uplink with externalTrafficPolicy Local: only this node's endpoints (when that
      // differs from the host's choice below).
      const etpLocal = svc.externalTrafficPolicy === 'Local';
      if (etpLocal && !sameEndpoints(plan.local, plan.cluster))
        b.flow(
          'ServiceLB',
          210,
          [
            m.ip(),
            proto,
            regMatch(PacketSource, Source.uplink),
            m.nwDst(dp.virtualIP),
            m.tpDst(np),
          ],
          lb('Local', plan.local),
          'service',
          objKey,
        );
      // From the host itself (redirected NodeIP:port / 127.0.0.1:port): any endpoint, as kube-proxy does.
      b.flow(
        'ServiceLB',
        200,
        [m.ip(), proto, m.nwDst(dp.virtualIP), m.tpDst(np)],
        lb('Cluster', plan.cluster),
        'service',
        objKey,
      );
      if (etpLocal && plan.local.length > 0) {
        // Keep the client address: skip the SNAT commit (no ct_state match: every packet passes).
        b.flow(
          'Snat',
          210,
          [
            m.ip(),
            proto,
            regMatch(NodePortDirection, Direction.request),
            m.nwDst(dp.virtualIP),
            m.tpDst(np),
          ],
          [a.goto(T('PostSnat'))],
          'service',
          objKey,
        );
      }
    }
    report.push({
      service: objKey,
      port: port.name || String(port.port),
      groups: [...groups],
      endpoints: plan.cluster.length,
    });
  }

  return report;
}

function endpointFlow(b: ProgramBuilder, dp: NodeDataplane, e: Endpoint): void {
  b.flow(
    'EndpointDnat',
    200,
    [
      m.ip(),
      m.proto(e.protocol),
      regMatch(EndpointIP, ipToInt(e.ip)),
      regMatch(EndpointPort, e.port),
    ],
    [
      {
        kind: 'ct',
        commit: true,
        zone: dp.ctZones.service,
        nat: { type: 'dst', ip: e.ip, port: e.port },
        setMark: SERVICE_MARK,
        table: T('L3Forwarding'),
      },
    ],
    'endpoint',
    `${e.protocol}/${e.ip}:${e.port}`,
  );
}

const SERVICE_MARK = Object.freeze({ value: ServiceCtMark.value, mask: ServiceCtMark.mask });
const PROTO_INDEX = { TCP: 0, UDP: 1, SCTP: 2 } as const;

/** A number that identifies protocol + IP + port, cheaper than a string key. */
function endpointKey(e: Endpoint): number {
  return PROTO_INDEX[e.protocol] * 0x1000000000000 + ipToInt(e.ip) * 65536 + e.port;
}

function sameEndpoints(x: Endpoint[], y: Endpoint[]): boolean {
  if (x === y) return true;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++)
    if (x[i].ip !== y[i].ip || x[i].port !== y[i].port) return false;
  return true;
}

/** Table-miss flows, from the declarations: every table says what an unmatched packet does. */
function missFlows(b: ProgramBuilder, dp: NodeDataplane): void {
  for (const t of TABLES) {
    const actions: Action[] =
      t.miss.kind === 'drop'
        ? [a.drop()]
        : t.miss.kind === 'local'
          ? [a.output('LOCAL')]
          : [a.goto(T(t.miss.table))];
    void dp;
    b.flow(t.name, 0, [], actions);
  }
}

export function compileNode(
  state: ClusterState,
  dp: NodeDataplane,
  opts: CompileOptions = {},
): CompiledNode {
  const b = new ProgramBuilder(opts.round ?? 1);
  baseFlows(b, dp);
  podFlows(b, dp);
  const endpoints = new Map<number, Endpoint>();
  const servicePorts = serviceFlows(b, dp, planServices(state, dp), endpoints);
  // Map insertion order is already deterministic (sorted Services, sorted endpoints).
  for (const e of endpoints.values()) endpointFlow(b, dp, e);
  missFlows(b, dp);
  return { flows: sortFlows(b.flows), groups: b.groups.sort((x, y) => x.id - y.id), servicePorts };
}

// Pieces for incremental compilation (the agent recompiles only what changed). Concatenating
// compileBase, every compileService and one compileEndpoint per distinct endpoint key gives the
// same flows and groups as compileNode (the tests check it).

/** Flows that depend only on the node: the base pipeline, local pods and table misses. */
export function compileBase(dp: NodeDataplane, opts: CompileOptions = {}): Flow[] {
  const b = new ProgramBuilder(opts.round ?? 1);
  baseFlows(b, dp);
  podFlows(b, dp);
  missFlows(b, dp);
  return b.flows;
}

export interface ServiceUnit {
  flows: Flow[];
  groups: Group[];
  /** endpoints this Service needs an EndpointDnat flow for, by endpointKey */
  endpoints: Map<number, Endpoint>;
}

/** One Service's flows and groups; `plans` are its ports (from planServices). */
export function compileService(
  plans: ServicePortPlan[],
  dp: NodeDataplane,
  alloc: GroupIdAllocator,
  opts: CompileOptions = {},
): ServiceUnit {
  const b = new ProgramBuilder(opts.round ?? 1, alloc);
  const endpoints = new Map<number, Endpoint>();
  serviceFlows(b, dp, plans, endpoints);
  return { flows: b.flows, groups: b.groups, endpoints };
}

/** The EndpointDnat flow of one endpoint (shared by every Service that uses it). */
export function compileEndpoint(e: Endpoint, dp: NodeDataplane, opts: CompileOptions = {}): Flow {
  const b = new ProgramBuilder(opts.round ?? 1);
  endpointFlow(b, dp, e);
  return b.flows[0];
}

export { endpointKey, sortFlows };

/**
 * Deterministic order: by table, then priority (high first). Ties keep insertion order, which is
 * itself deterministic because every input list is sorted before flows are generated.
 */
function sortFlows(flows: Flow[]): Flow[] {
  // Bucket by table (a counting pass), then order each table by priority only where needed:
  // most tables are generated in order already, and a full comparison sort of 150k flows is
  // a tenth of a large compile.
  const byTable = new Map<number, Flow[]>();
  for (const f of flows) {
    const list = byTable.get(f.table);
    if (list) list.push(f);
    else byTable.set(f.table, [f]);
  }
  const tables = [...byTable.keys()].sort((x, y) => x - y);
  let i = 0;
  for (const t of tables) {
    const list = byTable.get(t)!;
    let ordered = true;
    for (let k = 1; k < list.length && ordered; k++)
      ordered = list[k - 1].priority >= list[k].priority;
    if (!ordered) list.sort((x, y) => y.priority - x.priority); // stable: ties keep their order
    for (const f of list) flows[i++] = f;
  }
  return flows;
}
