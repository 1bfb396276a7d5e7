/**
 * vitest runs one thing in spool: the published Durable Streams conformance suite against the
 * gateway's HTTP door (`npm run test:ds`). The suite is written for vitest and ships as a
 * library (`runConformanceTests`); jest runs everything else (`npm test`).
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['gateway/streams-http/*.conformance.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // One gateway per store and transport, started in beforeAll; the suite's own cases are sequential.
    fileParallelism: false,
    reporters: ['default'],
  },
});
