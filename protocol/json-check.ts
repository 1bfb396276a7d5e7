/**
 * What `JSON.parse` lets through that spool must refuse (PROTOCOL §3.3), checked on text that
 * JSON.parse has already accepted, so it only has to find strings, numbers, brackets, colons and
 * commas:
 *
 * - an object with two equal member names, of which JSON.parse silently keeps the last
 *   (checkJsonNames, checkJsonMessage);
 * - and, for a whole `spool.v1.json` message (checkJsonMessage), what the rules of §3.3 forbid in
 *   any part of a message as they do in MessagePack: a `"__proto__"` member name; a `\uD800`-style
 *   escape that leaves a lone surrogate (not Unicode: UTF-8, MessagePack and the stores cannot
 *   carry it, and a token or key holding one would collapse into U+FFFD); an integer literal past
 *   2^53 that does not read back as sent: JSON.parse reads 9007199254740993 as 9007199254740992,
 *   which every reader then gets. (One that does, as JSON.stringify writes every double, like
 *   1152921504606847000 for 2^60, passes: a JavaScript producer's numbers are doubles.)
 *
 * `spool.v1.json` is the debugging subprotocol: this is a second linear pass over the text,
 * with a Set per object that has more than one member. Correctness over speed.
 */
import { SpoolError } from './errors';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Matches a lone (unpaired) UTF-16 surrogate; with the `u` flag a proper pair is one code point. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** Integer literals of at most this many digits always read back as sent (2^53 − 1 has 16). */
const SAFE_DIGITS = 15;

/**
 * Throws SpoolError(BAD_FRAME) if any object in `text` (valid JSON) has two members whose names
 * are equal once unescaped (`"a"` and `"\u0061"` are the same name).
 */
export function checkJsonNames(text: string): void {
  scan(text, false);
}

/**
 * Throws SpoolError(BAD_FRAME) unless `text` (valid JSON) is a message JSON.parse reads exactly:
 * no duplicate member names, no `"__proto__"` member, no lone surrogate escape, no integer
 * literal that would not read back as sent (PROTOCOL §3.3).
 */
export function checkJsonMessage(text: string): void {
  scan(text, true);
}

function scan(text: string, strict: boolean): void {
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
      let surrogate = false;
      for (i++; ; i++) {
        const d = text.charCodeAt(i);
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          escaped = true;
          // \uD800-\uDFFF: checked once the string is decoded (a pair is fine, a lone one is not).
          if (text.charCodeAt(i + 1) === 0x75 /* u */ && (text.charCodeAt(i + 2) | 0x20) === 0x64 /* d */ && isHexAbove7(text.charCodeAt(i + 3))) surrogate = true;
          i++;
        }
      }
      if (strict && surrogate && LONE_SURROGATE.test(JSON.parse(text.slice(start, i + 1)) as string)) {
        throw new SpoolError('BAD_FRAME', `JSON string at char ${start} escapes a lone UTF-16 surrogate (not valid Unicode)`);
      }
      if (!expectName) continue;
      const name = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
      if (strict && name === '__proto__') throw new SpoolError('BAD_FRAME', `JSON object has a "__proto__" member (at char ${start})`);
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
    } else if (strict && (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39))) {
      i = checkNumber(text, i) - 1;
    }
  }
}

/**
 * Checks the number literal at `start`; returns where it ends. An integer literal must read back
 * as sent: the double JSON.parse makes of it is written back (JSON.stringify, every reader) as the
 * same digits. Up to 15 digits always is.
 */
function checkNumber(text: string, start: number): number {
  let i = start;
  let digits = 0;
  let integer = true;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) digits++;
    else if (c === 0x2e /* . */ || c === 0x65 /* e */ || c === 0x45 /* E */ || c === 0x2b /* + */) integer = false;
    else if (c !== 0x2d /* - */) break;
  }
  if (integer && digits > SAFE_DIGITS) {
    const literal = text.slice(start, i);
    const value = Number(literal);
    if (String(value) !== literal) {
      throw new SpoolError('BAD_FRAME', `JSON integer ${literal.slice(0, 40)} at char ${start} would be read back as ${value}: send a number within ±(2^53 − 1), or a string`);
    }
  }
  return i;
}

/** 8-9, a-f, A-F: the third hex digit of a surrogate escape \uD8xx-\uDFxx. */
function isHexAbove7(c: number): boolean {
  return c === 0x38 || c === 0x39 || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function duplicate(name: string, at: number): never {
  const shown = name.length > 40 ? `${name.slice(0, 40)}…` : name;
  throw new SpoolError('BAD_FRAME', `JSON object has the member name ${JSON.stringify(shown)} twice (at char ${at}); JSON.parse would keep only the last`);
}
