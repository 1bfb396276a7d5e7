import { MemoryStore, OffsetFifo } from './memory';
import { runStoreConformance } from './store.conformance';

runStoreConformance('memory', async (options) => {
  const store = new MemoryStore(options);
  return { store, cleanup: () => store.close() };
});

describe('OffsetFifo', () => {
  it('pops entries in push order across compactions', () => {
    const fifo = new OffsetFifo();
    const popped: number[] = [];
    for (let i = 1; i <= 5000; i++) {
      fifo.push(i, i * 2);
      if (i % 3 === 0) popped.push(fifo.shift()?.offset ?? -1);
    }
    while (fifo.length > 0) popped.push(fifo.shift()?.offset ?? -1);
    expect(popped).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
    expect(fifo.shift()).toBeUndefined();
  });

  it('returns the size pushed with each offset', () => {
    const fifo = new OffsetFifo();
    fifo.push(7, 70);
    fifo.push(9, 90);
    expect([fifo.shift(), fifo.shift()]).toEqual([{ offset: 7, size: 70 }, { offset: 9, size: 90 }]);
  });
});
