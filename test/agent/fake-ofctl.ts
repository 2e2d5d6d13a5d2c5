// FakeOfctl: an in-memory switch behind the OfctlRunner interface. Bundles apply line by line
// (all or nothing), dumps print what is held, and `failNext` / `wipe` simulate errors and an
// ovs-vswitchd restart.
import { parseFlow, parseGroup } from '../../src/openflow/parse.js';
import { renderFlow, renderGroup } from '../../src/openflow/render.js';
import type { Flow, Group } from '../../src/openflow/types.js';
import { flowKey, type OfctlRunner } from '../../src/ovs/sync.js';

export class FakeOfctl implements OfctlRunner {
  flows = new Map<string, Flow>();
  groups = new Map<number, Group>();
  bundles: string[] = [];
  failNext = 0;

  async dumpFlows(): Promise<string> {
    return [...this.flows.values()].map(renderFlow).join('\n') + '\n';
  }
  async dumpGroups(): Promise<string> {
    return [...this.groups.values()].map(renderGroup).join('\n') + '\n';
  }
  async flowCount(): Promise<number> {
    return this.flows.size;
  }
  async bundle(text: string): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('OFPBFC_MSG_FAILED (fake)');
    }
    const flows = new Map(this.flows);
    const groups = new Map(this.groups);
    for (const line of text.split('\n').filter(Boolean)) {
      const [kind, op, ...rest] = line.split(' ');
      const body = rest.join(' ');
      if (kind === 'group') {
        if (op === 'delete') groups.delete(Number(/group_id=(\d+)/.exec(body)![1]));
        else {
          const g = parseGroup(body);
          if (op === 'add' && groups.has(g.id)) throw new Error(`group ${g.id} exists`);
          groups.set(g.id, g);
        }
      } else if (op === 'add') {
        const f = parseFlow(body);
        flows.set(flowKey(f), f);
      } else if (op === 'delete_strict') flows.delete(flowKey(parseFlow(`${body} actions=drop`)));
      else throw new Error(`fake does not know ${kind} ${op}`);
    }
    this.flows = flows;
    this.groups = groups;
    this.bundles.push(text);
  }
  wipe(): void {
    this.flows.clear();
    this.groups.clear();
  }
}
