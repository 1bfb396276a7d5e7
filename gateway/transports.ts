/**
 * Picks the transport a gateway listens with: a Transport object as given, or one named by
 * `transport` / `--transport` / `SPOOL_TRANSPORT`. uWebSockets.js is a native module; when it
 * cannot load here, the gateway says so and serves on ws rather than not at all.
 */
import type { Logger } from 'pino';
import type { Transport, TransportName } from './transport';
import { loadUwsTransport } from './transport-uws';
import { wsTransport } from './transport-ws';

/**
 * The transport for `choice`. Naming 'uws' where uWebSockets.js cannot load logs a warning
 * and returns the ws transport. `loadUws` is a seam for tests.
 */
export function selectTransport(
  choice: Transport | TransportName,
  logger: Logger,
  loadUws: () => Transport = loadUwsTransport,
): Transport {
  if (typeof choice !== 'string') return choice;
  switch (choice) {
    case 'ws':
      return wsTransport;
    case 'uws':
      try {
        return loadUws();
      } catch (error) {
        logger.warn(
          { err: error instanceof Error ? error.message : String(error), transport: 'ws' },
          'uWebSockets.js transport unavailable; falling back to the ws transport',
        );
        return wsTransport;
      }
  }
}
