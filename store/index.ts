/** spool/store: the SessionStore seam, its embedded implementations and the Redis store. */
export * from './types';
export { assembleRead, trimmedGap } from './read';
export { MemoryStore } from './memory';
export { LmdbStore, openLmdbStore, type LmdbStoreOptions } from './lmdb';
export { MIN_DEDUPE_WINDOW_MS, normalizeOptions } from './engine';
export { RedisStore, openRedisStore, sessionKeys, type RedisStoreOptions, type RedisTarget } from './redis';
