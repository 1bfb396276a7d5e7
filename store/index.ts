/** spool/store: the SessionStore seam and its embedded implementations. */
export * from './types';
export { assembleRead, trimmedGap } from './read';
export { MemoryStore } from './memory';
export { LmdbStore, openLmdbStore, type LmdbStoreOptions } from './lmdb';
export { MIN_DEDUPE_WINDOW_MS, normalizeOptions } from './engine';
