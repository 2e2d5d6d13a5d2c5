// Where the agent's cluster state comes from. A source delivers raw Kubernetes objects (the
// same shapes `kubectl get -o json` prints): whole snapshots of some kinds (a list, a re-read
// manifest) or single add/update/delete events (a watch). Validation happens later, per object.

export type RawObject = Record<string, unknown>;

/** The kinds the agent uses; a snapshot names the kinds it replaces. */
export const KINDS = ['Service', 'EndpointSlice', 'Node', 'Pod'] as const;
export type Kind = (typeof KINDS)[number];

export type SourceEvent =
  | { type: 'snapshot'; kinds: readonly Kind[]; objects: RawObject[] }
  | { type: 'add' | 'update' | 'delete'; object: RawObject };

export interface ClusterSource {
  readonly name: string;
  /** Begin delivering events; resolves once started (not once synced). */
  start(onChange: (ev: SourceEvent) => void): Promise<void>;
  stop(): Promise<void>;
}
