/**
 * Entry point of a benchmark's gateway child process (see gateway-child.ts): the real
 * `spool serve` CLI (gateway/cli.ts, with its flags and SPOOL_* environment variables) plus one
 * hook for the parent on the IPC channel, nothing in the gateway itself:
 *
 *   parent → { type: 'gc', id }      full garbage collection (the child runs with --expose-gc)
 *   child  → { type: 'gc', id, memory: process.memoryUsage() }
 *
 * so memory is sampled after garbage is gone. When the parent goes away (the channel
 * disconnects, e.g. the benchmark crashed), the child shuts itself down: a failed run never
 * leaves a gateway behind.
 */
// The CLI starts on import and reads process.argv, which `node gateway-main.js serve …` gives it.
import '../gateway/cli';

interface GcRequest {
  readonly type: 'gc';
  readonly id: number;
}

function isGcRequest(message: unknown): message is GcRequest {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'gc';
}

if (process.send !== undefined) {
  process.on('message', (message: unknown) => {
    if (!isGcRequest(message)) return;
    const gc = (globalThis as { gc?: () => void }).gc;
    // Twice: the first pass can leave finalizer-held objects for the second.
    gc?.();
    gc?.();
    process.send?.({ type: 'gc', id: message.id, collected: gc !== undefined, memory: process.memoryUsage() });
  });
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

