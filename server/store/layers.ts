/**
 * The store a server runs on: the backend, with MAC/IP lookups answered by
 * the in-process system index (store/index.ts) and distros, profiles,
 * subnets and install windows by the object cache (store/cache.ts). Both
 * backends get both: on PostgreSQL they save round trips, on SQLite the
 * B-tree walks whose tail (4.5 ms p99 for a lookup by MAC at a million
 * systems under load) missed issue 19's 1 ms. main.ts serves from this and
 * the store bench measures through it.
 */
import type { Store } from './store.js';
import { ObjectCache, cachedStore } from './cache.js';
import { SystemIndex, indexedStore } from './index.js';

export interface ServerStore {
  store: Store;
  index: SystemIndex;
  cache: ObjectCache;
}

/** Starts the index (it loads in the background) and the cache's feed; `onError` hears failed index re-reads. */
export async function serverStore(raw: Store, onError: (e: unknown) => void): Promise<ServerStore> {
  const index = new SystemIndex(raw, onError);
  await index.start();
  const cache = new ObjectCache(raw);
  try {
    await cache.start();
  } catch (e) {
    await index.stop();
    throw e;
  }
  return { store: cachedStore(indexedStore(raw, index), cache), index, cache };
}
