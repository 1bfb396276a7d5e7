/**
 * A SessionStore that is another one with some methods replaced (metering, tracing): every
 * method not replaced is the inner store's own, bound to it, including methods the interface
 * gains later, so a decorator names only what it changes.
 */
import type { SessionStore } from '../store/types';

export function decorateStore(inner: SessionStore, overrides: Partial<SessionStore>): SessionStore {
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(inner, {
    get(target, property) {
      if (Object.prototype.hasOwnProperty.call(overrides, property)) return overrides[property as keyof SessionStore];
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      let method = bound.get(property);
      if (method === undefined) {
        method = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(property, method);
      }
      return method;
    },
  });
}
