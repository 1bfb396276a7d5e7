/**
 * The protocol fuzzer in CI (chaos/fuzz.ts): 50,000 generated messages on each transport against
 * a real gateway, with a good session interleaved; and the codec alone on 50,000 more. A failure
 * names its seed: `SPOOL_FUZZ_SEED=<seed> npx jest chaos/fuzz.test.ts` replays it, and
 * `npm run fuzz -- --frames 1000000 --seed <seed>` runs the long version.
 */
import fc from 'fast-check';
import { decodeFrame, encodeFrame } from '../protocol/codec';
import { SpoolError } from '../protocol/errors';
import { DEFAULT_LIMITS } from '../protocol/limits';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Frame } from '../protocol/types';
import { validateClientFrame } from '../protocol/validate';
import { encodeMessage, runFuzz, type FrameResolver } from './fuzz';
import { ID, SEQ_REF, TokenRef, fuzzMessage } from './fuzz-frames';

const SEED = process.env['SPOOL_FUZZ_SEED'] !== undefined ? Number(process.env['SPOOL_FUZZ_SEED']) : Math.floor(Math.random() * 2 ** 31);
const FRAMES = 50_000;

it.each(['ws', 'uws'] as const)(
  `%s: ${FRAMES} generated messages (seed ${SEED}) get only protocol frames and registry codes, every request one answer, nothing invalid stored, and the good session loses nothing`,
  async (transport) => {
    const report = await runFuzz({ transport, frames: FRAMES, seed: SEED });
    expect(report.frames).toBeGreaterThanOrEqual(FRAMES);
    // The run reached the actors, not only the decoder: writes were stored and answered.
    expect(report.answers['appended'] ?? 0).toBeGreaterThan(0);
    expect(report.answers['opened'] ?? 0).toBeGreaterThan(0);
    expect(report.errors['BAD_FRAME'] ?? 0).toBeGreaterThan(0);
    expect(report.goodChunks).toBeGreaterThan(0);
  },
  240_000,
);

/** Tokens and seqs as a connection that was never answered has them; ids from 1. */
const resolveAlone: FrameResolver = (template, ids) => {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(template)) {
    if (field === ID) ids.push((out[key] = ids.length + 1) as number);
    else if (field instanceof TokenRef) out[key] = 'v1/1/fz-a/g1/AAAAAAAAAAAAAAAAAAAAAA';
    else if (field === SEQ_REF) out[key] = 0;
    else if (key === 'resume' && typeof field === 'object' && field !== null && !Array.isArray(field)) out[key] = resolveAlone(field as Record<string, unknown>, ids, false);
    else if (field !== undefined) out[key] = field;
  }
  return out;
};

it(`the codec alone: ${FRAMES} generated messages (seed ${SEED}) decode to a valid frame or are BAD_FRAME, and a valid frame reads back as itself over both subprotocols`, () => {
  fc.assert(
    fc.property(fuzzMessage, fc.constantFrom(SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON), (message, protocol) => {
      const encoded = encodeMessage(message, protocol, resolveAlone);
      if (!encoded) return;
      let frame: Frame;
      try {
        frame = validateClientFrame(decodeFrame(encoded.data, protocol), DEFAULT_LIMITS);
      } catch (error) {
        if (!(error instanceof SpoolError) || error.code !== 'BAD_FRAME') throw error;
        return;
      }
      for (const again of [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] as const) {
        const back = validateClientFrame(decodeFrame(encodeFrame(frame, again), again), DEFAULT_LIMITS);
        // -0 reads back as 0 (PROTOCOL §3.3); JSON text compares everything else exactly.
        if (JSON.stringify(back) !== JSON.stringify(frame)) throw new Error(`${JSON.stringify(frame)} read back over ${again} as ${JSON.stringify(back)}`);
      }
    }),
    { numRuns: FRAMES, seed: SEED },
  );
});
