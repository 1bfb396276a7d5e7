/**
 * The door's settings: off means no door, and they are checked like every option.
 */
import pino from 'pino';
import { configFromEnv } from '../config';
import { ConfigError, validateOptions } from '../config-file';
import { startGateway } from '../gateway';
import { MemoryStore } from '../../store/memory';

test('with streams off (SPOOL_STREAMS=0) the gateway has no /v1/stream/ route: GET answers 404 as for any unknown path', async () => {
  expect(configFromEnv({ SPOOL_STREAMS: '0' })).toMatchObject({ streams: false });
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }), ...configFromEnv({ SPOOL_STREAMS: '0' }) });
  try {
    const res = await fetch(`http://127.0.0.1:${gw.port}/v1/stream/anything`);
    expect(res.status).toBe(404);
    expect(res.headers.get('stream-next-offset')).toBeNull();
  } finally {
    await gw.close();
  }
});

test('the door settings are validated by name: a zero body bound or a zero long-poll is refused', () => {
  expect(() => validateOptions({ streamsMaxBodyBytes: 0 }, 'test')).toThrow(ConfigError);
  expect(() => validateOptions({ streamsMaxBodyBytes: 0 }, 'test')).toThrow(/streamsMaxBodyBytes/);
  expect(() => validateOptions({ streamsLongPollMs: 0 }, 'test')).toThrow(/streamsLongPollMs/);
  expect(validateOptions({ streams: false, streamsSseMaxMs: 30_000 }, 'test')).toEqual({ streams: false, streamsSseMaxMs: 30_000 });
});
