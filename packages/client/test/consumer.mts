/**
 * A Node program using spool-client as an app would, after `npm install spool-client ws`: it
 * imports nothing but the package (the SDK finds `ws` by itself on Node 20). The package test
 * (chaos/sdk-package.test.ts) compiles it as ESM (.mts) and CommonJS (.cts) under
 * moduleResolution node16, and once more under bundler, and runs both builds against a gateway.
 *
 *   node consumer.mjs <gateway url> <session>   → one JSON line: what it wrote and read
 */
import { SpoolClient, SpoolError, isGap, type FinishResult, type SubscriptionItem } from 'spool-client';

// The Node globals it touches; declared here so the project needs no @types/node.
declare const process: { readonly argv: readonly string[]; exitCode?: number };

const CHUNKS = 100;

async function main(url: string, session: string): Promise<void> {
  const client = new SpoolClient({ url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
  try {
    const subscription = client.subscribe(session, { from: 'start' });
    const generation = client.generation(session, { id: 'node-consumer' });
    for (let seq = 0; seq < CHUNKS; seq++) {
      if (!generation.write({ seq, text: `token ${seq} ` })) await generation.drained();
    }
    const finished: FinishResult = await generation.finish({ timeoutMs: 30_000 });
    const items: SubscriptionItem[] = [];
    for await (const item of subscription) {
      items.push(item);
      if (!isGap(item) && item.type === 'gen.end') break;
    }
    // Errors are one class whichever module format loaded the SDK, and carry a code.
    let refused = 'nothing';
    try {
      client.generation('not a session id');
    } catch (error) {
      refused = error instanceof SpoolError ? error.code : `not a SpoolError: ${String(error)}`;
    }
    console.log(JSON.stringify({ finished, items, refused }));
  } finally {
    await client.close();
  }
}

main(process.argv[2] ?? '', process.argv[3] ?? '').catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
