// The OpenFlow vocabulary svcflow speaks: flows, groups, matches and actions as plain data.
// The compiler produces these values, the renderer turns them into ovs-ofctl text, and the
// simulator interprets them (or values parsed back from `ovs-ofctl dump-flows`).

/** A port as OpenFlow sees it: a number, or one of the reserved names we use. */
export type PortRef = number | 'LOCAL' | 'IN_PORT';

/** A register slice: regN[start..end] inclusive, like OVS's NXM_NX_REGN[start..end]. */
export interface RegSlice {
  reg: number;
  start: number;
  end: number;
}

/** One match condition. Values are in the same form ovs-ofctl prints them. */
export type MatchField =
  | { kind: 'in_port'; port: PortRef }
  | { kind: 'eth_type'; value: 'ip' | 'arp' }
  | { kind: 'ip_proto'; value: 'tcp' | 'udp' | 'sctp' | 'icmp' | 'igmp' }
  | { kind: 'dl_src' | 'dl_dst'; mac: string }
  | { kind: 'nw_src' | 'nw_dst'; cidr: string } // "10.0.0.1" or "10.0.0.0/24"
  | { kind: 'tp_src' | 'tp_dst'; port: number }
  | { kind: 'arp_op'; op: number }
  | { kind: 'arp_spa' | 'arp_tpa'; ip: string }
  | { kind: 'reg'; reg: number; value: number; mask: number }
  // flags like "+trk+new-est": each named state must be set (+) or clear (-)
  | { kind: 'ct_state'; flags: Partial<Record<CtStateFlag, boolean>> }
  | { kind: 'ct_mark'; value: number; mask: number };

export type CtStateFlag = 'new' | 'est' | 'rel' | 'rpl' | 'inv' | 'trk' | 'snat' | 'dnat';

/** Fields an action may write or read. */
export type FieldRef =
  | { kind: 'reg'; slice: RegSlice }
  | { kind: 'eth_src' | 'eth_dst' | 'arp_sha' | 'arp_tha' }
  | { kind: 'ip_src' | 'ip_dst' | 'arp_spa' | 'arp_tpa' }
  | { kind: 'tp_src' | 'tp_dst' }
  | { kind: 'arp_op' }
  | { kind: 'ct_mark' };

export interface NatSpec {
  type: 'src' | 'dst';
  ip: string;
  /** Only for dst NAT to an endpoint port. */
  port?: number;
  /** Only for src NAT: the ports the translated source may take (inclusive). */
  portRange?: [number, number];
}

export type Action =
  | { kind: 'goto_table'; table: number }
  | { kind: 'resubmit'; table: number }
  | { kind: 'output'; port: PortRef }
  /** output:NXM_NX_REGn[] — the port number held in a register. */
  | { kind: 'output_reg'; slice: RegSlice }
  | { kind: 'group'; id: number }
  | { kind: 'drop' }
  /** load a constant into a field (mod_dl_src, mod_nw_dst, load:…->REG… all map here). */
  | { kind: 'set'; field: FieldRef; value: number | string }
  /** copy one field to another of the same width (used by the ARP responder). */
  | { kind: 'move'; from: FieldRef; to: FieldRef }
  | {
      kind: 'ct';
      commit: boolean;
      zone: number;
      /** recirculate to this table after conntrack; absent: continue without recirculation */
      table?: number;
      /** nat: undefined = no NAT; 'existing' = apply the connection's NAT (bare `nat`); or a new NAT */
      nat?: 'existing' | NatSpec;
      /** ct_mark value/mask written at commit */
      setMark?: { value: number; mask: number };
    }
  | { kind: 'ct_clear' };

export interface Flow {
  table: number;
  priority: number;
  cookie: bigint;
  match: MatchField[];
  actions: Action[];
}

export interface GroupBucket {
  id: number;
  weight: number;
  actions: Action[];
}

export interface Group {
  id: number;
  type: 'select';
  cookie?: bigint;
  /**
   * Fields the bucket choice hashes (`selection_method=hash,fields(…)`); unset = OVS's default,
   * whose symmetric L4 hash leaves UDP ports out.
   */
  hashFields?: string[];
  buckets: GroupBucket[];
}

/** The whole OpenFlow program for one bridge. */
export interface OpenFlowProgram {
  groups: Group[];
  flows: Flow[];
}
