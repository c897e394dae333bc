/**
 * The cluster module's public surface: local PostgreSQL servers and whole local
 * clusters (see README.md). Importers use this file rather than reaching into
 * the individual files.
 */
export * from './pg-binaries.js';
export * from './postgres-user.js';
export {
  initPostgres,
  startPostgres,
  stopPostgres,
  postgresPid,
  processAlive,
  tailFile,
  writePostgresConf,
  DEFAULT_HOST,
  DEFAULT_SUPERUSER,
  DEFAULT_MAX_CONNECTIONS,
  type PostgresServerOptions,
} from './postgres-server.js';
export * from './psql.js';
export * from './cluster-state.js';
export * from './local-cluster.js';
export * from './coordinator-process.js';
export * from './lifecycle.js';
export * from './certificates.js';
