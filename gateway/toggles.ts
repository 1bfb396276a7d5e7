/**
 * Runtime toggles: gateway settings an operator changes without a restart, through the admin API
 * (`GET/PUT /admin/toggles`, protocol/ADMIN.md). Session actors read them on every use, so a
 * change applies to the next write of every session.
 *
 *   syncAppend        every write flushed and acked on its own: no batching, no linger (the
 *                     emergency fallback when batching is suspected)
 *   readOnly          maintenance / drain: new generations and appends are refused with
 *                     READ_ONLY (retryable); reads are served and open generations may finish
 *   degradeWatermark  queued writes past which debug chunks are dropped at the door (0: never)
 */
import { SpoolError } from '../protocol/errors';

export interface ToggleValues {
  readonly syncAppend: boolean;
  readonly readOnly: boolean;
  readonly degradeWatermark: number;
}

export class Toggles implements ToggleValues {
  syncAppend = false;
  readOnly = false;
  degradeWatermark: number;

  constructor(initial: { readonly degradeWatermark: number }) {
    this.degradeWatermark = initial.degradeWatermark;
  }

  get values(): ToggleValues {
    return { syncAppend: this.syncAppend, readOnly: this.readOnly, degradeWatermark: this.degradeWatermark };
  }

  /** Applies a partial update after checking every field of it; unknown keys are refused by name. */
  update(change: unknown): ToggleValues {
    if (change === null || typeof change !== 'object' || Array.isArray(change)) throw new SpoolError('BAD_FRAME', 'toggles must be a JSON object');
    const next = { ...this.values };
    for (const [key, value] of Object.entries(change)) {
      switch (key) {
        case 'syncAppend':
        case 'readOnly':
          if (typeof value !== 'boolean') throw new SpoolError('BAD_FRAME', `${key} must be true or false, got ${JSON.stringify(value)}`);
          next[key] = value;
          break;
        case 'degradeWatermark':
          if (!Number.isSafeInteger(value) || (value as number) < 0) throw new SpoolError('BAD_FRAME', `degradeWatermark must be an integer >= 0 (0: never degrade), got ${JSON.stringify(value)}`);
          next.degradeWatermark = value as number;
          break;
        default:
          throw new SpoolError('BAD_FRAME', `unknown toggle ${JSON.stringify(key)} (known: syncAppend, readOnly, degradeWatermark)`);
      }
    }
    this.syncAppend = next.syncAppend;
    this.readOnly = next.readOnly;
    this.degradeWatermark = next.degradeWatermark;
    return this.values;
  }

  /** READ_ONLY for a write that would start something new while the gateway is read-only. */
  refuseNew(what: string): SpoolError | null {
    return this.readOnly ? new SpoolError('READ_ONLY', `the gateway is read-only for maintenance: ${what} refused; retry later or through another gateway`) : null;
  }
}
