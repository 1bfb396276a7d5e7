/** spool/gateway: run a spool gateway in-process. */
export { startGateway, type Gateway, type GatewayState } from './gateway';
export { DEFAULT_CONFIG, resolveConfig, configFromEnv, type GatewayConfig, type GatewayOptions } from './config';
export type { TelemetrySink, DomainEvent } from './telemetry';
export type { Transport, TransportName, TransportSocket, TransportServer } from './transport';
export { wsTransport } from './transport-ws';
export { createUwsTransport, loadUwsTransport } from './transport-uws';
export { selectTransport } from './transports';
export type { DeleteOutcome, ResetOutcome } from './write-results';
export type { AdminServer, AdminHandler, AdminRouteOptions, AdminRouteReply, AdminRouteRequest } from './admin-server';
