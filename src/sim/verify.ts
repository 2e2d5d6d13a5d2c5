// The contract of docs/pipeline.md, checked in the simulator: every path the lab would probe
// (src/lab/paths.ts) is run as a whole connection, once per allowed server, on a fresh cluster.
import { planServices } from '../pipeline/services.js';
import { enumeratePaths, type LabPath, type PathServer, type PathSource } from '../lab/paths.js';
import {
  ClusterSim,
  forceEndpoint,
  serverAddresses,
  serverName,
  type ClusterModel,
} from './cluster.js';
import { runConnection, type ConnectionOptions, type ConnectionResult } from './connection.js';
import { describeEnd } from './describe.js';
import type { Place } from './network.js';
import { type Packet, arpRequest, tcpPacket } from './packet.js';

export type CheckName =
  | 'reaches-endpoint'
  | 'client-address'
  | 'same-server'
  | 'reply-addresses'
  | 'no-duplicate'
  | 'must-fail'
  | 'isolation';

export interface Problem {
  check: CheckName;
  detail: string;
}

export interface CaseResult {
  path: LabPath;
  /** the server this run forced (one run per allowed server) */
  target?: PathServer;
  /** where the first request arrived */
  reached?: string;
  /** what the server saw as (src, dst) */
  saw?: string;
  ok: boolean;
  problems: Problem[];
  packets: number;
}

export interface VerifyReport {
  cases: CaseResult[];
  passed: number;
  failed: number;
}

/**
 * The lab's paths plus what the simulator can afford to probe on top: the host → every local
 * pod (each pod's ARP answer is then used), and outside clients of the host's own services on
 * every node address (kubelet, ssh: not NodePorts, so the pipeline must hand them to LOCAL).
 */
export function clusterPaths(model: ClusterModel): LabPath[] {
  const paths = enumeratePaths(
    model.state,
    model.nodes.map((n) => n.dp),
    model.external.ip,
  );
  const covered = new Set(
    paths
      .filter((p) => p.source.kind === 'host' && p.group.startsWith('5'))
      .map((p) => `${(p.source as { node: string }).node}>${p.dest.ip}`),
  );
  for (const n of model.nodes) {
    for (const pod of n.pods) {
      if (covered.has(`${n.name}>${pod.ip}`)) continue;
      paths.push({
        name: `host ${n.name} → local pod ${pod.name}`,
        group: '5 host↔pod',
        source: { kind: 'host', node: n.name },
        protocol: 'TCP',
        dest: { ip: pod.ip, port: HOST_PROBE_PORT },
        servers: [{ name: `${pod.namespace}/${pod.name}`, peer: n.dp.gatewayIP }],
      });
    }
    // Hairpin for every pod that backs a Service (the lab list has one per protocol and node).
    const hairpinned = new Set(
      paths
        .filter((p) => p.name.endsWith('(hairpin)'))
        .map((p) => p.source.kind === 'pod' && p.source.ip),
    );
    for (const plan of planServices(model.state, n.dp)) {
      const svc = plan.service;
      if (svc.clusterIPs.length === 0 || plan.port.protocol === 'SCTP') continue;
      const eps = svc.internalTrafficPolicy === 'Local' ? plan.local : plan.cluster;
      for (const pod of n.pods) {
        if (hairpinned.has(pod.ip) || !eps.some((e) => e.ip === pod.ip)) continue;
        hairpinned.add(pod.ip);
        paths.push({
          name: `pod ${pod.name} → ${svc.name}:${plan.port.name || plan.port.port} ClusterIP (hairpin, itself)`,
          group: '3 pod→ClusterIP',
          source: {
            kind: 'pod',
            node: n.name,
            namespace: pod.namespace,
            name: pod.name,
            ip: pod.ip,
          },
          protocol: plan.port.protocol,
          dest: { ip: svc.clusterIPs[0], port: plan.port.port },
          servers: [{ name: `${pod.namespace}/${pod.name}`, peer: n.dp.gatewayIP }],
        });
      }
    }
    for (const ip of n.dp.nodeIPs)
      paths.push({
        name: `external → ${n.name} ${ip}:${HOST_PROBE_PORT} (host service)`,
        group: '9 node address',
        source: { kind: 'external', ip: model.external.ip },
        protocol: 'TCP',
        dest: { ip, port: HOST_PROBE_PORT },
        servers: [{ name: `host:${n.name}`, peer: model.external.ip }],
      });
  }
  return paths;
}

/** A port nothing in the example uses as a NodePort: the kubelet's. */
const HOST_PROBE_PORT = 10250;

/** Traffic the pipeline must stop inside the bridge: nothing may come out of any bridge. */
export interface Probe {
  name: string;
  from: Place;
  packet: Packet;
  /** the node whose bridge must stop it (default: no bridge may let it out) */
  stopAt?: string;
}

export function isolationProbes(sim: ClusterSim): Probe[] {
  const model = sim.model;
  const out: Probe[] = [];
  const station = model.external;
  for (const n of model.nodes) {
    const pod = n.pods[0];
    if (!pod) continue;
    const from: Place = { kind: 'pod', node: n.name, ip: pod.ip };
    const peer = model.nodes.find((x) => x !== n)?.pods[0] ?? pod;
    out.push({
      name: `${n.name}: IGMP from pod ${pod.name} is dropped at the classifier`,
      from,
      packet: {
        ethSrc: pod.mac,
        ethDst: '01:00:5e:00:00:16',
        ethType: 'ip',
        ipSrc: pod.ip,
        ipDst: '224.0.0.22',
        ipProto: 'igmp',
      },
    });
    out.push({
      name: `${n.name}: pod ${pod.name} sending from a foreign IP is dropped (spoof guard)`,
      from,
      packet: tcpPacket({
        src: `${n.dp.gatewayIP.replace(/\.\d+$/, '.250')}:40000`,
        dst: `${peer.ip}:8080`,
        ethSrc: pod.mac,
        ethDst: n.dp.gatewayMAC,
      }),
    });
    // A segment no connection explains (a SYN-ACK nobody asked for) is conntrack-invalid. It
    // comes from a peer host: hosts send past their own OVS without conntrack, so the drop
    // must happen on this node.
    const peerNode = model.nodes.find((x) => x !== n);
    if (peerNode)
      out.push({
        name: `${n.name}: an unsolicited SYN-ACK from host ${peerNode.name} to pod ${pod.name} is dropped (ct invalid)`,
        from: { kind: 'host', node: peerNode.name },
        stopAt: n.name,
        packet: tcpPacket({
          src: `${peerNode.dp.mainIP}:40000`,
          dst: `${pod.ip}:8080`,
          flags: 'SA',
        }),
      });
    out.push({
      name: `${n.name}: an outside ARP for pod ${pod.name} is not answered`,
      from: { kind: 'station', name: station.name },
      packet: arpRequest({ sha: station.mac, spa: station.ip, tpa: pod.ip }),
    });
  }
  return out;
}

export function sourcePlace(sim: ClusterSim, s: PathSource): Place {
  if (s.kind === 'pod') return { kind: 'pod', node: s.node, ip: s.ip };
  if (s.kind === 'host') return { kind: 'host', node: s.node };
  return sim.station(s.ip);
}

const ep = (ip?: string, port?: number) => `${ip ?? '?'}${port === undefined ? '' : `:${port}`}`;
export const addresses = (p: Packet) => `(${ep(p.ipSrc, p.tpSrc)}, ${ep(p.ipDst, p.tpDst)})`;

/** The contract checks for one connection of one path. */
export function checkConnection(
  model: ClusterModel,
  path: LabPath,
  target: PathServer | undefined,
  conn: ConnectionResult,
): Problem[] {
  const problems: Problem[] = [];
  for (const s of conn.steps) {
    const v = s.journey.verdict;
    if (v === 'duplicate' || v === 'error')
      problems.push({
        check: 'no-duplicate',
        detail: `packet ${s.index + 1} (${s.direction}): ${v === 'error' ? s.journey.error : `${s.journey.arrivals.length} arrivals`}`,
      });
  }
  const first = conn.steps[0];
  if (path.mustFail) {
    if (first && first.journey.arrivals.length > 0)
      problems.push({
        check: 'must-fail',
        detail: `must fail (${path.mustFail}) but reached ${first.journey.arrivals.map((a) => serverName(model, a.place)).join(', ')}`,
      });
    return problems;
  }
  if (!conn.server || !conn.serverSaw) {
    problems.push({
      check: 'reaches-endpoint',
      detail: first ? `request not delivered: ${describeEnd(model, first.journey)}` : 'not sent',
    });
    return problems;
  }
  const reached = serverName(model, conn.server);
  const allowed = path.servers.map((s) => s.name);
  if (!allowed.includes(reached) || (target && target.name !== reached)) {
    problems.push({
      check: 'reaches-endpoint',
      detail: `reached ${reached}, expected ${target ? target.name : allowed.join(' | ')}`,
    });
    return problems;
  }
  const server = path.servers.find((s) => s.name === reached)!;
  if (conn.serverSaw.ipSrc !== server.peer)
    problems.push({
      check: 'client-address',
      detail: `${reached} saw ${addresses(conn.serverSaw)}, client should be ${server.peer}`,
    });
  const req = conn.request;
  for (const s of conn.steps.slice(1)) {
    const got = s.journey.arrivals.length === 1 ? s.journey.arrivals[0].packet : undefined;
    const where = s.journey.arrivals.map((a) => serverName(model, a.place)).join(', ');
    if (s.direction === 'request') {
      const ok =
        got &&
        s.journey.arrivals[0].place.kind === conn.server.kind &&
        serverName(model, s.journey.arrivals[0].place) === reached &&
        addresses(got) === addresses(conn.serverSaw);
      if (!ok)
        problems.push({
          check: 'same-server',
          detail: `packet ${s.index + 1} (${s.flags}): ${got ? `${where} saw ${addresses(got)}` : describeEnd(model, s.journey)}, first was ${addresses(conn.serverSaw)} at ${reached}`,
        });
    } else {
      const want = `(${ep(req.ipDst, req.tpDst)}, ${ep(req.ipSrc, req.tpSrc)})`;
      const atClient =
        got && serverName(model, s.journey.arrivals[0].place) === serverName(model, conn.client);
      if (!atClient || addresses(got) !== want)
        problems.push({
          check: 'reply-addresses',
          detail: `reply ${s.index + 1} (${s.flags || 'udp'}): ${got ? `${where} got ${addresses(got)}` : describeEnd(model, s.journey)}, client expects ${want}`,
        });
    }
    if (problems.length) break;
  }
  if (conn.stopped && problems.length === 0)
    problems.push({ check: 'same-server', detail: conn.stopped });
  return problems;
}

export interface VerifyOptions {
  paths?: LabPath[];
  /** stop at the first failing case (the mutation check only needs one) */
  failFast?: boolean;
  sim?: ClusterSim;
  /** also send the isolation probes (default true) */
  probes?: boolean;
}

/**
 * Run each path's connection once per allowed server (forcing the bucket that reaches it), on a
 * fresh simulation each time; `visit` may return true to stop.
 */
export function forEachPathConnection(
  sim: ClusterSim,
  paths: LabPath[],
  options: ConnectionOptions,
  visit: (path: LabPath, target: PathServer | undefined, conn: ConnectionResult) => boolean | void,
): void {
  for (const path of paths)
    for (const target of path.servers.length ? path.servers : [undefined]) {
      sim.reset();
      const conn = runConnection(
        sim,
        sourcePlace(sim, path.source),
        { ip: path.dest.ip, port: path.dest.port, protocol: path.protocol },
        {
          trace: false,
          ...options,
          chooseBucket: target ? forceEndpoint(serverAddresses(sim.model, target.name)) : undefined,
        },
      );
      if (visit(path, target, conn)) return;
    }
}

export function verifyCluster(model: ClusterModel, opts: VerifyOptions = {}): VerifyReport {
  const sim = opts.sim ?? new ClusterSim(model);
  const paths = opts.paths ?? clusterPaths(model);
  const report: VerifyReport = { cases: [], passed: 0, failed: 0 };
  let stop = false;
  forEachPathConnection(
    sim,
    paths,
    // a second exchange: established UDP requests take their own flows (hairpin)
    { udpRounds: 2 },
    (path, target, conn) => {
      const problems = checkConnection(model, path, target, conn);
      const r: CaseResult = {
        path,
        target,
        reached: conn.server && serverName(model, conn.server),
        saw: conn.serverSaw && addresses(conn.serverSaw),
        ok: problems.length === 0,
        problems,
        packets: conn.steps.length,
      };
      report.cases.push(r);
      if (r.ok) report.passed++;
      else {
        report.failed++;
        if (opts.failFast) stop = true;
      }
      return stop;
    },
  );
  if (stop) return report;
  if (opts.probes !== false) runProbes(sim, report, opts.failFast);
  return report;
}
function runProbes(sim: ClusterSim, report: VerifyReport, failFast?: boolean): void {
  for (const probe of isolationProbes(sim)) {
    sim.reset();
    const j = sim.send(probe.from, probe.packet, { trace: false });
    const leaked = j.hops.filter(
      (h) =>
        h.kind === 'bridge' &&
        h.result.outputs.length > 0 &&
        (probe.stopAt === undefined || h.node === probe.stopAt),
    );
    const problems: Problem[] = [];
    if (j.verdict === 'error') problems.push({ check: 'isolation', detail: j.error ?? 'error' });
    if (leaked.length || j.arrivals.length)
      problems.push({
        check: 'isolation',
        detail: `left the bridge on ${leaked.map((h) => (h as { node: string }).node).join(', ') || '-'}; arrived at ${j.arrivals.map((a) => serverName(sim.model, a.place)).join(', ') || '-'}`,
      });
    const r: CaseResult = {
      path: {
        name: probe.name,
        group: '0 isolation',
        source: { kind: 'external', ip: '' },
        protocol: 'TCP',
        dest: {
          ip: probe.packet.ipDst ?? probe.packet.arpTpa ?? '',
          port: probe.packet.tpDst ?? 0,
        },
        servers: [],
        mustFail: 'stopped inside the bridge',
      },
      ok: problems.length === 0,
      problems,
      packets: 1,
    };
    report.cases.push(r);
    if (r.ok) report.passed++;
    else {
      report.failed++;
      if (failFast) return;
    }
  }
}
