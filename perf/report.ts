/**
 * How the perf tools talk to a terminal: the figures' number formats, aligned tables, the
 * machine line every report starts with, positive-number flags, and the entry-point wrapper
 * that turns a run into an exit status.
 */
import os from 'node:os';

// ------------------------------------------------------------------ figures

/** A rounded integer with thousands separators: `12,345`. */
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Two, one or no decimals as |n| is under 10, under 100 or more: `3.14`, `31.4`, `314`. */
export const figure = (n: number): string => (Math.abs(n) < 10 ? n.toFixed(2) : Math.abs(n) < 100 ? n.toFixed(1) : n.toFixed(0));

/** `format`, but `?` for NaN and ±Infinity (a figure that could not be measured). */
export const orUnknown =
  (format: (n: number) => string) =>
  (n: number): string =>
    Number.isFinite(n) ? format(n) : '?';

/**
 * Rows under a header and a rule of dashes, two spaces between columns; the first column is
 * left-aligned, the others right-aligned; trailing blanks trimmed.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ').trimEnd();
  return [line(header), line(header.map((_, i) => '-'.repeat(widths[i] as number))), ...rows.map(line)];
}

/**
 * A report's last line: `correct` (what was checked and held) when the run found nothing wrong,
 * else `CORRECTNESS FAILED:` and every problem, one a line.
 */
export function correctness(report: { readonly ok: boolean; readonly problems: readonly string[] }, correct: string): string {
  return report.ok ? correct : `CORRECTNESS FAILED:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`;
}

/** The machine a report was measured on. */
export interface Machine {
  readonly node: string;
  readonly cpus: number;
  readonly platform: string;
}

/** This machine: Node version, CPU count, `platform arch`. */
export function machine(): Machine {
  return { node: process.version, cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}` };
}

// ------------------------------------------------------------------ command line

/** A `--flag` value that must be a positive integer; `fallback` when the flag is absent. */
export function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got ${value}`);
  return n;
}

/** A `--flag` value that must be a finite number above 0; `fallback` when the flag is absent. */
export function positiveNumber(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number, got ${value}`);
  return n;
}

/** A progress line on stderr, so stdout carries only the report (and its `--json`). */
export function progress(line: string): void {
  process.stderr.write(`… ${line}\n`);
}

/**
 * Prints `report` as text, then as one line of JSON when `json`; the exit status is 0 only when
 * the run found nothing wrong.
 */
export function printReport<R extends { readonly ok: boolean }>(report: R, format: (report: R) => string, json: boolean): number {
  console.log(format(report));
  if (json) console.log(JSON.stringify(report));
  return report.ok ? 0 : 1;
}

/**
 * Runs an entry point's `main` on the command line's arguments and sets the exit status it
 * returns; a throw prints `<name> failed: <stack>` and exits 1.
 */
export function runMain(name: string, main: (argv: readonly string[]) => Promise<number>): void {
  main(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    })
    .catch((error: unknown) => {
      console.error(`${name} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
      process.exitCode = 1;
    });
}
