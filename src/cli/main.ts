/**
 * Entry point of the `pgweave` command (bin/pgweave.js imports this file):
 * runs the command line on import. Everything else lives in program.ts, which
 * can be imported without side effects.
 */
import { runCli } from './program.js';

await runCli(process.argv);
