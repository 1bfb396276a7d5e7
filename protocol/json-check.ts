/**
 * The one thing `JSON.parse` lets through that spool must refuse (PROTOCOL §3.3): an object
 * with two equal member names, of which JSON.parse silently keeps the last. Run on text that
 * JSON.parse has already accepted, so it only has to find strings, brackets, colons and commas.
 *
 * `spool.v1.json` is the debugging subprotocol: this is a second linear pass over the text,
 * with a Set per object that has more than one member. Correctness over speed.
 */
import { SpoolError } from './errors';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Throws SpoolError(BAD_FRAME) if any object in `text` (valid JSON) has two members whose names
 * are equal once unescaped (`"a"` and `"\u0061"` are the same name).
 */
export function checkJsonNames(text: string): void {
  // Per open container: null for an array, else the names seen so far in that object (a
  // string until the second name, when a Set takes over).
  const names: Array<Set<string> | string | null | undefined> = [];
  const isObject: boolean[] = [];
  let expectName = false;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      let escaped = false;
      for (i++; ; i++) {
        const d = text.charCodeAt(i);
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          escaped = true;
          i++;
        }
      }
      if (!expectName) continue;
      const name = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
      const top = isObject.length - 1;
      const seen = names[top];
      if (seen === undefined) {
        names[top] = name;
      } else if (typeof seen === 'string') {
        if (seen === name) duplicate(name, i);
        names[top] = new Set([seen, name]);
      } else if (seen !== null) {
        if (seen.has(name)) duplicate(name, i);
        seen.add(name);
      }
      expectName = false;
    } else if (c === 0x7b /* { */) {
      isObject.push(true);
      names.push(undefined);
      expectName = true;
    } else if (c === 0x5b /* [ */) {
      isObject.push(false);
      names.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      isObject.pop();
      names.pop();
    } else if (c === 0x2c /* , */) {
      expectName = isObject[isObject.length - 1] === true;
    }
  }
}

function duplicate(name: string, at: number): never {
  const shown = name.length > 40 ? `${name.slice(0, 40)}…` : name;
  throw new SpoolError('BAD_FRAME', `JSON object has the member name ${JSON.stringify(shown)} twice (at char ${at}); JSON.parse would keep only the last`);
}
