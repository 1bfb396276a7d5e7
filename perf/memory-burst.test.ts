/**
 * Memory gives back what a burst took (README "Memory after a burst"), the small version of
 * `npm run bench:memory`: a gateway child is sent two bursts of 600 short-lived sessions (a
 * producer connection streams a generation and finishes, a reader connection reads it to `live`,
 * both leave); once every actor is evicted and a GC ran, what it holds is back within bounds.
 */
import { runMemoryBurst } from './memory-burst';

it('after bursts of short-lived connections and sessions, the V8 heap comes back to within 4 MiB of where it started and does not grow from burst to burst, and RssAnon to within 48 MiB', async () => {
  const result = await runMemoryBurst({ units: 600, rounds: 2, concurrency: 50, chunks: 10, bytes: 200, transport: 'ws' });
  const [baseline, first, second] = result.samples;
  if (!baseline || !first || !second) throw new Error('missing samples');
  // Nothing is left loaded: the bounds are about what the process keeps, not about live state.
  expect(second.sessionsActive).toBe(0);
  expect(second.connectionsActive).toBe(0);
  expect(second.heapUsed - baseline.heapUsed).toBeLessThan(4);
  // A leak of anything per unit (a connection, an actor, a map entry of ~1 KiB) would add ~0.6 MiB a burst.
  expect(second.heapUsed - first.heapUsed).toBeLessThan(0.5);
  // glibc's per-thread malloc arenas keep some freed memory (MALLOC_ARENA_MAX=2 gives it back).
  expect(second.rssAnon - baseline.rssAnon).toBeLessThan(48);
}, 240_000);
