/**
 * A consumer in a process of its own, so a test can SIGKILL it mid-batch.
 *
 *   node consumer-child.js URL TOPIC GROUP MODE CONSUMER_ID TALLY_TABLE PAUSE_AT_BATCH
 *
 * For every batch it prints {"batch": [[partition, offset, id], …]}, writes
 * the tally rows one by one (inside the batch's transaction in exactly-once
 * mode, each on its own in at-least-once mode) and commits. At batch number
 * PAUSE_AT_BATCH it stops halfway through the writes, prints {"mid": true}
 * and waits to be killed.
 */
import { StreamsClient } from '../../src/client/index.js';

const [url, topic, group, mode, consumerId, tally, pauseAt] = process.argv.slice(2);

function say(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

async function main(): Promise<void> {
  const client = await StreamsClient.connect(url!);
  const consumer = client.consumer<{ id: string }>({
    topic: topic!,
    group: group!,
    consumerId,
    mode: mode as 'exactly-once' | 'at-least-once',
    maxEvents: 8,
    waitMs: 300,
    leaseTimeoutMs: 2000,
  });
  let n = 0;
  say({ ready: true });
  for await (const batch of consumer) {
    n++;
    say({ batch: batch.events.map((e) => [e.partition, e.offset, e.value.id]) });
    const half = Math.ceil(batch.events.length / 2);
    for (let i = 0; i < batch.events.length; i++) {
      if (n >= Number(pauseAt) && batch.events.length >= 2 && i === half) {
        say({ mid: true });
        await new Promise((resolve) => setTimeout(resolve, 60_000));
      }
      const e = batch.events[i]!;
      await batch.query(
        `INSERT INTO ${tally} (event_id, consumer, partition, event_offset, n, processed_at) VALUES ($1, $2, $3, $4, 1, clock_timestamp())
         ON CONFLICT (event_id) DO UPDATE SET n = ${tally}.n + 1`,
        [e.value.id, consumerId, e.partition, e.offset],
      );
    }
    await batch.commit();
  }
}

main().catch((err: unknown) => {
  say({ error: String((err as Error)?.message ?? err) });
  process.exit(1);
});
