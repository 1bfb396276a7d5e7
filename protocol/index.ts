/** spool/protocol: the wire contract shared by gateway and clients. */
export * from './types';
export * from './errors';
export * from './limits';
export * from './codec';
export * from './validate';
export * from './token';
