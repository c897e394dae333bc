/**
 * The distributed catalog of a test cluster as the planner sees it, read
 * fresh (a MetadataCache of this test process, closed right after), so a
 * test can ask the planner which plan a statement gets.
 */
import { NodePools } from '../../src/pool/node-pools.js';
import { MetadataCache } from '../../src/metadata/metadata-cache.js';
import type { Catalog } from '../../src/metadata/types.js';
import type { TestCluster } from '../helpers/cluster.js';

export async function loadCatalogFor(cluster: TestCluster, database = 'postgres'): Promise<Catalog> {
  const pools = new NodePools(cluster.config.internal);
  const metadata = new MetadataCache(pools, cluster.coordinatorPg);
  try {
    return await metadata.get(database);
  } finally {
    metadata.close();
    pools.close();
  }
}
