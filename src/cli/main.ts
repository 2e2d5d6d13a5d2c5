// The svcflow command line. Data goes to stdout, diagnostics to stderr; input errors exit 2.
import { Command, CommanderError } from 'commander';
import { InputError } from '../cluster/load.js';
import { NodeError } from '../config/resolve.js';
import { registerCompile, UsageError } from './compile.js';
import { registerAgent } from './agent.js';
import { registerLab } from './lab.js';
import { registerTrace } from './trace.js';
import { registerVerify } from './verify.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program
    .name('svcflow')
    .description('Kubernetes Service load balancing compiled into an Open vSwitch pipeline')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerCompile(program);
  registerAgent(program);
  registerLab(program);
  registerTrace(program);
  registerVerify(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof InputError || err instanceof NodeError || err instanceof UsageError) {
      process.stderr.write(`svcflow: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
