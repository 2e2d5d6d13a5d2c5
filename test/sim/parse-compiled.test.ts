// The parser must read back everything the compiler emits for the bundled example.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalFlow, parseProgram } from '../../src/openflow/parse.js';
import { renderProgram } from '../../src/openflow/render.js';
import { example } from '../helpers/example.js';

describe('parse(render(compileNode(example)))', () => {
  for (const node of ['node-a', 'node-b']) {
    it(node, () => {
      const { compiled } = example(node);
      const text = renderProgram(compiled);
      const parsed = parseProgram(text.flows, text.groups);
      assert.equal(parsed.flows.length, compiled.flows.length);
      compiled.flows.forEach((f, i) =>
        assert.deepEqual(canonicalFlow(parsed.flows[i]), canonicalFlow(f)),
      );
      // Group cookies are not part of the ovs-ofctl group syntax.
      compiled.groups.forEach((g, i) => {
        const expected = { ...g };
        delete expected.cookie;
        assert.deepEqual(parsed.groups[i], expected);
      });
    });
  }
});
