/**
 * HTML that escapes by construction, and line charts drawn as inline SVG, for the perf
 * dashboard (dashboard.ts): no chart library, no script, nothing fetched.
 *
 *   html`<td>${value}</td>`   every interpolated value is escaped, unless it is itself Html
 *                             (the result of another html`` or of lineChart); arrays are joined
 *   lineChart({...})          one <figure data-chart=id> holding an <svg>: y from 0 to a round
 *                             maximum with 5 gridlines, one <g data-series=name> per series (a
 *                             path broken where a value is missing, a circle per point with a
 *                             <title> tooltip), optional dashed threshold lines, and a legend
 */

/** Markup that is already safe: html`` and lineChart return it, and html`` inserts it as is. */
export class Html {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text;
  }
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `text` with & < > " ' escaped: safe in element content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

function render(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/** A template whose interpolations are escaped (Html values and arrays of them inserted as they are). */
export function html(strings: TemplateStringsArray, ...values: readonly unknown[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

// ------------------------------------------------------------------ line charts

/** One line of a chart: a value per x position, null where there is none. */
export interface Series {
  readonly name: string;
  readonly values: readonly (number | null)[];
  /** Per point, appended to its tooltip (e.g. the commit). */
  readonly notes?: readonly (string | undefined)[];
  /** Points drawn as failures (red ring), e.g. a window that failed the gate. */
  readonly failed?: readonly boolean[];
}

export interface LineChartSpec {
  /** `data-chart` of the figure: what a test looks for. */
  readonly id: string;
  readonly title: string;
  /** Unit shown on the y axis and in tooltips, e.g. `chunks/s`, `ms`, `%`. */
  readonly unit: string;
  /** One label per x position (a run's date, a window's end). */
  readonly xLabels: readonly string[];
  readonly series: readonly Series[];
  /** Horizontal dashed lines, e.g. a gate's threshold. */
  readonly thresholds?: readonly { readonly label: string; readonly value: number }[];
  /** @default 2 significant decimals for small values, thousands separators for large ones */
  readonly format?: (n: number) => string;
}

/** Colours of the series, in order (then again). */
export const PALETTE: readonly string[] = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];

const WIDTH = 560;
const HEIGHT = 260;
const PAD = { left: 64, right: 16, top: 14, bottom: 42 } as const;
const GRIDLINES = 5;
/** x labels drawn at most (the others are in the tooltips). */
const MAX_X_LABELS = 8;

/** The default format: `12,345` from 100 up, else up to 3 significant digits. */
export function defaultFormat(n: number): string {
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return Number(n.toPrecision(3)).toString();
}

/** The smallest of 1, 2, 2.5, 5 × 10^k that is >= `max` / GRIDLINES, times GRIDLINES; 1 when max <= 0. */
export function niceMax(max: number): number {
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  const rough = max / GRIDLINES;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  return step * GRIDLINES;
}

const fixed = (n: number): string => n.toFixed(1);

/** A line chart as a <figure> with an inline <svg>, its legend under it. */
export function lineChart(spec: LineChartSpec): Html {
  const format = spec.format ?? defaultFormat;
  const n = spec.xLabels.length;
  const values = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const top = niceMax(Math.max(0, ...values, ...(spec.thresholds ?? []).map((t) => t.value)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i: number): number => PAD.left + (n <= 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v: number): number => PAD.top + plotH - (Math.max(0, v) / top) * plotH;

  const grid = Array.from({ length: GRIDLINES + 1 }, (_, k) => {
    const v = (top * k) / GRIDLINES;
    return html`<line class="grid" x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${fixed(y(v))}" y2="${fixed(y(v))}"/><text class="tick" x="${PAD.left - 6}" y="${fixed(y(v) + 4)}" text-anchor="end">${format(v)}</text>`;
  });
  const every = Math.max(1, Math.ceil(n / MAX_X_LABELS));
  const xTicks = spec.xLabels.map((label, i) =>
    i % every === 0 || i === n - 1
      ? // The last label ends at its point, so it is not cut at the chart's right edge.
        html`<text class="tick" x="${fixed(x(i))}" y="${HEIGHT - PAD.bottom + 16}" text-anchor="${i === n - 1 && n > 1 ? 'end' : 'middle'}">${label}</text>`
      : null,
  );
  const thresholds = (spec.thresholds ?? []).map(
    (t) =>
      html`<g class="threshold" data-threshold="${t.label}"><line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${fixed(y(t.value))}" y2="${fixed(y(t.value))}"/><text x="${WIDTH - PAD.right}" y="${fixed(y(t.value) - 4)}" text-anchor="end">${t.label}</text></g>`,
  );
  const lines = spec.series.map((s, k) => {
    const colour = PALETTE[k % PALETTE.length] as string;
    let d = '';
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        drawing = false;
        return;
      }
      d += `${drawing ? 'L' : 'M'}${fixed(x(i))},${fixed(y(v))}`;
      drawing = true;
    });
    const points = s.values.map((v, i) => {
      if (v === null || !Number.isFinite(v)) return null;
      const note = s.notes?.[i];
      const tip = `${s.name} @ ${spec.xLabels[i] ?? i}: ${format(v)} ${spec.unit}${note === undefined ? '' : ` (${note})`}`;
      const failed = s.failed?.[i] === true;
      return html`<circle cx="${fixed(x(i))}" cy="${fixed(y(v))}" r="${failed ? 5 : 3}" class="${failed ? 'point failed' : 'point'}" fill="${colour}"><title>${tip}</title></circle>`;
    });
    return html`<g class="series" data-series="${s.name}" stroke="${colour}"><path d="${d}" fill="none" stroke-width="2"/>${points}</g>`;
  });
  const legend = spec.series.map((s, k) => html`<li><span class="swatch" style="background:${PALETTE[k % PALETTE.length] as string}"></span>${s.name}</li>`);
  const empty = values.length === 0 ? html`<text class="empty" x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">no data</text>` : null;
  return html`<figure class="chart" data-chart="${spec.id}"><figcaption>${spec.title} <span class="unit">(${spec.unit})</span></figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${spec.title}"><line class="axis" x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}"/><line class="axis" x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}"/>${grid}${xTicks}${thresholds}${lines}${empty}</svg><ul class="legend">${legend}</ul></figure>`;
}
