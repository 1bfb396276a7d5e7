/**
 * The edge, assembled from the configuration: the guard (connection counts, Origin, failed
 * authentications), the gate every connection's socket goes through (unread replies, frame
 * rate), and what the transport is asked to enforce itself (request deadlines, socket cap, TLS).
 * README "Security" lists every limit with its default and code.
 */
import type { Logger } from 'pino';
import type { ErrorCode } from '../../protocol/errors';
import type { GatewayConfig } from '../config';
import type { ListenOptions, TransportSocket } from '../transport';
import { ClientAddresses } from './addresses';
import { connectionCapUnder, softFdLimit } from './fd-limit';
import { EdgeGuard } from './guard';
import { InboundGate } from './inbound-gate';

/** Frames (and bytes: 4 × maxFrameBytes) that may wait while a connection's reading is paused, as while a token is verified. */
export const MAX_QUEUED_FRAMES = 1024;

export interface Edge {
  readonly guard: EdgeGuard;
  /** Whose address a request is (the peer's, or the client's behind trusted proxies). */
  readonly addresses: ClientAddresses;
  /** maxConnections as enforced: lowered to fit the file descriptor limit. */
  readonly maxConnections: number;
  /** What the transport enforces. */
  readonly listen: Pick<ListenOptions, 'admit' | 'clientAddress' | 'tls' | 'headersTimeoutMs' | 'requestTimeoutMs' | 'maxSockets'>;
  /** The gate a new connection's socket is wrapped in. */
  gate(socket: TransportSocket): InboundGate;
}

export function createEdge(config: GatewayConfig, logger: Logger, refused: (code: ErrorCode) => void, fdLimit = softFdLimit()): Edge {
  const maxConnections = connectionCapUnder(fdLimit, config.maxConnections, config.reservedSockets);
  if (maxConnections < config.maxConnections) {
    logger.warn(
      { maxConnections: config.maxConnections, fdLimit, enforced: maxConnections },
      'maxConnections lowered to fit the file descriptor limit (raise it with ulimit -n / LimitNOFILE)',
    );
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) throw new Error('give both --tls-cert and --tls-key (SPOOL_TLS_CERT, SPOOL_TLS_KEY), or neither');
  if ((config.adminTlsCert === undefined) !== (config.adminTlsKey === undefined)) {
    throw new Error('give both --admin-tls-cert and --admin-tls-key (SPOOL_ADMIN_TLS_CERT, SPOOL_ADMIN_TLS_KEY), or neither');
  }
  const addresses = new ClientAddresses(config.trustProxy);
  const guard = new EdgeGuard({
    maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    allowedOrigins: config.allowedOrigins,
    authFailureBurst: config.authFailureBurst,
    authFailureRate: config.authFailureRate,
  });
  const gateOptions = {
    maxFramesPerSecond: config.maxFramesPerSecond,
    maxBufferedBytes: config.maxConnectionBufferedBytes,
    drainTimeoutMs: config.connectionDrainTimeoutMs,
    maxQueuedFrames: MAX_QUEUED_FRAMES,
    maxQueuedBytes: 4 * config.limits.maxFrameBytes,
  };
  return {
    guard,
    addresses,
    maxConnections,
    listen: {
      clientAddress: (peer, forwardedFor) => addresses.resolve(peer, forwardedFor),
      admit: (remoteAddress, origin) => {
        const refusal = guard.admit(remoteAddress, origin);
        if (refusal) {
          refused(refusal.code);
          logger.debug({ remoteAddress, ...(origin !== undefined ? { origin } : {}), code: refusal.code }, 'upgrade refused');
        }
        return refusal;
      },
      ...(config.tlsCert !== undefined && config.tlsKey !== undefined ? { tls: { certFile: config.tlsCert, keyFile: config.tlsKey } } : {}),
      headersTimeoutMs: config.httpHeadersTimeoutMs,
      requestTimeoutMs: config.httpRequestTimeoutMs,
      maxSockets: maxConnections + config.reservedSockets,
    },
    gate: (socket) => new InboundGate(socket, gateOptions),
  };
}
