/**
 * Cheap size estimates of event data, for batch bounds, retention bytes and buffer accounting.
 * Exact encoded size would cost an encode per chunk; text deltas (the common case) are strings,
 * whose UTF-16 length is within a small factor of their bytes.
 */
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false });

export function dataSize(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof Uint8Array) return data.byteLength;
  if (data === null || data === undefined || typeof data === 'number' || typeof data === 'boolean') return 8;
  return packr.pack(data).byteLength;
}
