/**
 * Helpers for producer tests against the FakeGateway: the gateway's side of `open` and `ack`,
 * and small assertions on what the SDK sent.
 */
import type { SpoolError } from '../../protocol';
import { within, type FakeSocket, type Seen } from './fake-gateway';

/** The canonical token the fake hands out for an open. */
export function tokenOf(open: Seen): string {
  return `v1/1/${open['session']}/${open['generation']}`;
}

/** Plays the gateway's side of `open`: answers with `opened {nextSeq}`. */
export async function answerOpen(socket: FakeSocket, nextSeq = 0, offset = 1): Promise<Seen> {
  const open = await socket.next('open');
  socket.send({
    type: 'opened',
    id: open['id'],
    session: open['session'],
    generation: open['generation'],
    token: open['resume']?.token ?? tokenOf(open),
    nextSeq,
    offset,
    resumed: nextSeq > 0,
  });
  return open;
}

export function ack(socket: FakeSocket, generation: string, seq: number, offset: number, dropped?: number): void {
  socket.send({ type: 'ack', generation, seq, offset, ...(dropped !== undefined ? { dropped } : {}) });
}

/** Every chunk seq carried by `chunks` frames. */
export function seqsOf(frames: Seen[]): number[] {
  return frames.flatMap((frame) => (frame['items'] as unknown[]).map((_, i) => (frame['seq'] as number) + i));
}

/** Every item carried by `chunks` frames, in seq order of arrival. */
export function itemsOf(frames: Seen[]): unknown[] {
  return frames.flatMap((frame) => frame['items'] as unknown[]);
}

/** Resolves with the SpoolError `promise` rejects with; fails if it resolves or hangs. */
export function rejection(promise: Promise<unknown>, ms = 15_000): Promise<SpoolError> {
  return within(
    promise.then(
      () => {
        throw new Error('expected a rejection');
      },
      (error: unknown) => error as SpoolError,
    ),
    ms,
    'a rejection',
  );
}

/** The error `fn` throws (fails if it returns). */
export function thrown(fn: () => unknown): SpoolError {
  try {
    fn();
  } catch (error) {
    return error as SpoolError;
  }
  throw new Error('expected a throw');
}
