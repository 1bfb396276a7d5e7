/**
 * The operator of a chaos run: admin API calls (protocol/ADMIN.md) to a gateway that is up, the
 * way `spool reset` / `spool delete` make them. Chaos gateways run in open mode, so the admin
 * listener asks for no credential.
 */
import type { GatewayNode } from './topology';
import { pick } from './util';

export interface AdminAnswer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * One call to the admin listener of a gateway that is up (seeded choice); undefined when none is
 * up or the one asked did not answer (killed under the request: whether it acted is unknown).
 */
export async function adminCall(gateways: readonly GatewayNode[], rand: () => number, method: string, path: string, timeoutMs = 20_000): Promise<AdminAnswer | undefined> {
  const up = gateways.filter((g) => g.up);
  if (up.length === 0) return undefined;
  const gateway = pick(rand, up);
  try {
    const response = await fetch(`${gateway.adminUrl}${path}`, { method, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: kept as text for the anomaly that reports it
    }
    return { status: response.status, body };
  } catch {
    return undefined;
  }
}
