/**
 * `npm run bench -- NAME [options]`: runs one benchmark by name. Every
 * benchmark measures pgweave and a plain PostgreSQL in the same run and prints
 * the ratio (DESIGN.md conventions), so numbers from different machines can
 * still be compared.
 */
import { passthrough } from './passthrough.js';
import { transactions } from './transactions.js';
import { router } from './router.js';
import { streams } from './streams.js';
import { analytics } from './analytics.js';
import { ingest } from './ingest.js';
import { rebalance } from './rebalance.js';
import { preparedPushdown } from './prepared-pushdown.js';

export interface Benchmark {
  description: string;
  usage: string;
  run(args: string[]): Promise<void>;
}

const benchmarks: Record<string, Benchmark> = {
  passthrough,
  transactions,
  router,
  streams,
  analytics,
  ingest,
  rebalance,
  'prepared-pushdown': preparedPushdown,
};

function listBenchmarks(): string {
  return Object.entries(benchmarks)
    .map(([name, b]) => `  ${name.padEnd(14)} ${b.description}\n  ${' '.repeat(14)} ${b.usage}`)
    .join('\n');
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const bench = name ? benchmarks[name] : undefined;
  if (!bench) {
    const help = name === '--help' || name === '-h';
    if (name && !help) console.error(`unknown benchmark "${name}"\n`);
    console.error(`usage: npm run bench -- NAME [options]\n\nbenchmarks:\n${listBenchmarks()}`);
    process.exit(help ? 0 : 2);
  }
  await bench.run(args);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
