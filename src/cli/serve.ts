/**
 * `pgweave serve --config FILE`: the coordinator in the foreground.
 *
 * This is the process `pgweave up` starts detached. It closes cleanly on
 * SIGTERM (what `pgweave down` sends) and SIGINT; a second signal exits at once.
 */
import { readConfigFile, startCoordinator } from '../server/index.js';

export async function runServe(configFile: string): Promise<void> {
  const config = readConfigFile(configFile);
  const coordinator = await startCoordinator(config);
  const { host, port } = coordinator.address;
  console.log(`${new Date().toISOString()} pgweave coordinator (pid ${process.pid}) listening on ${host}:${port}`);

  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    console.log(`${new Date().toISOString()} ${signal}: closing`);
    coordinator.close().then(
      () => process.exit(0),
      (err: Error) => {
        console.error(`error while closing: ${err.stack ?? err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
