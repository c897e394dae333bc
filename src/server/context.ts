/** What every client connection of one coordinator shares. */
import type tls from 'node:tls';
import type { CoordinatorConfig } from './config.js';
import type { InternalPool } from '../pool/internal-pool.js';
import type { Session, SessionOptions } from '../session/session.js';
import type { CancelRegistry } from './cancel-registry.js';
import type { SharedState } from './session-services.js';

export interface ServerContext {
  config: CoordinatorConfig;
  /** Internal-role connections to the coordinator PostgreSQL. */
  internal: InternalPool;
  cancels: CancelRegistry;
  tls: tls.SecureContext | null;
  sessions: Set<Session>;
  sessionOptions: SessionOptions;
  shared: SharedState;
}
