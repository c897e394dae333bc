/**
 * `pgweave streams …`: look at a cluster's streams from the shell.
 *
 *   pgweave streams tail TOPIC [--from-beginning] [--partition N] [--count N]
 *   pgweave streams lag GROUP [--json]
 *
 * Both connect like any client: --url, else $DATABASE_URL, else the local
 * cluster in --dir (as `pgweave url` would print it). `tail` reads with
 * pgweave.read_topic (no consumer group, so it changes nobody's offsets)
 * and waits for new events until interrupted or --count events were shown.
 */
import type { Command } from 'commander';
import { StreamsClient } from '../client/index.js';
import { targetUrl, type ConnectOpts } from './target-url.js';

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`not a whole number: ${value}`);
  return n;
}

async function tail(topic: string, opts: ConnectOpts & { fromBeginning?: boolean; partition?: number; count?: number; json?: boolean }): Promise<void> {
  const client = await StreamsClient.connect(targetUrl(opts));
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  try {
    // Start positions for every partition, so nothing published between two reads is skipped.
    const offsets = await client.query('SELECT * FROM pgweave.topic_offsets($1)', [topic]);
    const positions = new Map<number, number>(
      offsets.rows.map((row) => [Number(row.partition), Number(opts.fromBeginning ? row.first_offset ?? 0 : row.end_offset)]),
    );
    let shown = 0;
    while (!stop && (opts.count === undefined || shown < opts.count)) {
      const r = await client.query('SELECT * FROM pgweave.read_topic($1, positions => $2, max_events => 500, wait_ms => $3)', [
        topic,
        JSON.stringify(Object.fromEntries(positions)),
        1000,
      ]);
      for (const row of r.rows) {
        const partition = Number(row.partition);
        const offset = Number(row.offset);
        positions.set(partition, Math.max(positions.get(partition) ?? 0, offset + 1));
        if (opts.partition !== undefined && partition !== opts.partition) continue;
        if (opts.count !== undefined && shown >= opts.count) break;
        shown++;
        if (opts.json) console.log(JSON.stringify({ partition, offset, key: row.key, payload: row.payload === null ? null : JSON.parse(row.payload), headers: row.headers === null ? null : JSON.parse(row.headers), published_at: row.published_at }));
        else console.log(`${row.published_at}  p${partition}@${offset}  ${row.key ?? '-'}  ${row.payload ?? 'null'}`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    client.close();
  }
}

async function lag(group: string, opts: ConnectOpts & { json?: boolean }): Promise<void> {
  const client = await StreamsClient.connect(targetUrl(opts));
  try {
    const rows = await client.lag(group);
    if (opts.json) {
      console.log(JSON.stringify(rows, null, 2));
      return;
    }
    console.log(`${'topic'.padEnd(20)} ${'partition'.padStart(9)} ${'owner'.padEnd(28)} ${'committed'.padStart(12)} ${'end'.padStart(12)} ${'lag'.padStart(10)}`);
    let total = 0;
    for (const r of rows) {
      total += r.lag;
      console.log(
        `${r.topic.padEnd(20)} ${String(r.partition).padStart(9)} ${(r.owner ?? '-').padEnd(28)} ${String(r.committedOffset).padStart(12)} ${String(r.endOffset).padStart(12)} ${String(r.lag).padStart(10)}`,
      );
    }
    console.log(`total lag ${total}`);
  } finally {
    client.close();
  }
}

/** Adds `streams tail` and `streams lag` to the program. */
export function addStreamsCommands(program: Command, dirOption: (cmd: Command) => Command): void {
  const streams = program.command('streams').description('publish/subscribe streams: tail a topic, show a consumer group\'s lag');
  dirOption(streams.command('tail').description('print a topic\'s events as they are published (Ctrl-C stops)'))
    .argument('<topic>')
    .option('--url <url>', 'connection string (default $DATABASE_URL, else the cluster in --dir)')
    .option('--from-beginning', 'start at the oldest stored event instead of the end')
    .option('--partition <n>', 'only this partition', parseCount)
    .option('--count <n>', 'stop after N events', parseCount)
    .option('--json', 'one JSON object per line')
    .action(tail);
  dirOption(streams.command('lag').description('per partition: owner, committed offset, end offset and lag of a consumer group'))
    .argument('<group>')
    .option('--url <url>', 'connection string (default $DATABASE_URL, else the cluster in --dir)')
    .option('--json', 'machine-readable output')
    .action(lag);
}
