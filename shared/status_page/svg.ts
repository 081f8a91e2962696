/**
 * @module
 * Renders the status board as one standalone SVG document (`?format=svg`), for deployments that do not serve HTML
 * (Edge Functions on `*.supabase.co` rewrite a `text/html` answer to `text/plain`; a browser shows an
 * `image/svg+xml` answer as a picture). Same data and sections as the HTML page: banner, counts, services, open
 * alerts, tenants with their 24 h / 7 day availability bars (one nested `<svg>` per bar, one `<rect>` per segment,
 * exactly as the HTML page draws them), jobs. 1400 px wide, as high as its content.
 *
 * Safety: no script of any kind (no `<script>`, no event attribute, no `<foreignObject>`, links only to `?…` URLs
 * of this page). Every value from a tenant, Evolution or the database goes through {@link svg}, which first replaces
 * the characters XML 1.0 forbids (a control character would make the whole document unreadable) and then escapes
 * `& < > " '` with Hono's `html` template (its entities are XML's predefined ones and `&#39;`), for text and
 * attributes alike. Colours and fonts are presentation attributes, not CSS, so no stylesheet is needed.
 *
 * SVG has no text layout: widths are estimated from DejaVu Sans metrics (wider than most UI fonts), long values are
 * wrapped or cut with an ellipsis at a grapheme boundary with the full value in a `<title>` (the tooltip), and every
 * cell is clipped to its column in case a font is wider still.
 */
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import {
  type AlertRow,
  BAR_BUCKETS,
  type JobRow,
  type Segment,
  type StatusData,
  TENANT_LIMIT,
  type TenantRow,
} from "./data.ts";
import {
  formatDuration,
  formatTime,
  jobBadge,
  OVERALL_TEXT,
  percentText,
  serverDetail,
  serviceDetail,
  SERVICES,
} from "./render.ts";

/** A fragment of escaped SVG markup. */
export type Svg = HtmlEscapedString;

/** The board's width in px. */
export const SVG_WIDTH = 1400;
const MARGIN = 32;
const CONTENT = SVG_WIDTH - 2 * MARGIN;
const LINE = 16;
const PAD_X = 8;
const PAD_Y = 8;

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";
const MONO = "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace";

const C = {
  ok: "#1f9d55",
  warn: "#d97706",
  bad: "#dc2626",
  unk: "#9ca3af",
  fg: "#111827",
  muted: "#6b7280",
  line: "#e5e7eb",
  bg: "#f9fafb",
  head: "#f3f4f6",
  card: "#ffffff",
  link: "#1d4ed8",
  white: "#ffffff",
} as const;

/** Fill of a badge or bar segment per state (the HTML page's `.st-*` / `.seg-*` colours). */
const STATE_FILL: Record<string, string> = {
  healthy: C.ok,
  ok: C.ok,
  degraded: C.warn,
  warning: C.warn,
  unhealthy: C.bad,
  error: C.bad,
  critical: C.bad,
  missed: C.bad,
};

const OVERALL_FILL: Record<string, string> = {
  operational: C.ok,
  degraded: C.warn,
  outage: C.bad,
  unknown: "#4b5563",
};

// ---------------------------------------------------------------------------------------------------------------
// Escaping

const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Replaces every character XML 1.0 does not allow (C0 controls but tab/LF/CR, lone surrogates, U+FFFE, U+FFFF). */
export function xmlChars(value: string): string {
  return value.replace(NOT_XML_CHAR, "\uFFFD");
}

function xmlValue(value: unknown): unknown {
  if (typeof value === "string") return xmlChars(value);
  if (Array.isArray(value)) return value.map(xmlValue);
  if (typeof value === "number") return Number.isFinite(value) ? Math.round(value * 100) / 100 : 0;
  if (value === null || value === undefined || typeof value === "boolean") return value;
  if (value instanceof String && (value as { isEscaped?: boolean }).isEscaped) return value;
  return xmlChars(String(value));
}

const compacted = new WeakMap<TemplateStringsArray, string[]>();

/**
 * The template's fixed text without the line breaks and indentation the formatter lays out: a run of whitespace
 * holding a line break goes away next to a tag (`>` before it or `<` after it), and is one space elsewhere (between
 * attributes, or where a long text was wrapped). Interpolated values are never touched.
 */
function compact(strings: TemplateStringsArray): string[] {
  let out = compacted.get(strings);
  if (!out) {
    out = strings.map((part) =>
      part.replace(
        /\s*\n\s*/g,
        (run: string, at: number) => part[at - 1] === ">" || part[at + run.length] === "<" ? "" : " ",
      )
    );
    compacted.set(strings, out);
  }
  return out;
}

/**
 * The SVG template tag: Hono's `html` (escapes `& < > " '` in every interpolated string, keeps already escaped
 * fragments) after replacing the characters XML forbids. `null`, `undefined` and booleans render nothing, numbers
 * are rounded to 2 decimals; the template's own layout whitespace is dropped (see {@link compact}).
 */
export function svg(strings: TemplateStringsArray, ...values: unknown[]): Svg {
  const out = html(compact(strings) as unknown as TemplateStringsArray, ...values.map(xmlValue));
  if (out instanceof Promise) throw new Error("svg: an interpolated value is asynchronous");
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Text measurement and fitting

// advance widths (em) of DejaVu Sans for U+0020..U+007E, 16 a row
// deno-fmt-ignore
const ASCII_EM = [
  0.318, 0.401, 0.46, 0.838, 0.636, 0.95, 0.78, 0.275, 0.39, 0.39, 0.5, 0.838, 0.318, 0.361, 0.318, 0.337,
  0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.337, 0.337, 0.838, 0.838, 0.838, 0.531,
  1.0, 0.684, 0.686, 0.698, 0.77, 0.632, 0.575, 0.775, 0.752, 0.295, 0.295, 0.656, 0.557, 0.863, 0.748, 0.787,
  0.603, 0.787, 0.695, 0.635, 0.611, 0.732, 0.684, 0.989, 0.685, 0.611, 0.685, 0.39, 0.337, 0.39, 0.838, 0.5,
  0.5, 0.613, 0.635, 0.55, 0.635, 0.615, 0.352, 0.635, 0.634, 0.278, 0.278, 0.579, 0.278, 0.974, 0.634, 0.612,
  0.635, 0.635, 0.411, 0.521, 0.392, 0.634, 0.592, 0.818, 0.592, 0.592, 0.525, 0.636, 0.337, 0.636, 0.838,
];
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u;
const WIDE =
  /^[\u1100-\u115F\u231A-\u23FF\u25A0-\u27BF\u2E80-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6\u{1F000}-\u{1FAFF}\u{20000}-\u{3FFFD}]$/u;
const graphemes = new Intl.Segmenter("en", { granularity: "grapheme" });

function charEm(ch: string, mono: boolean): number {
  const cp = ch.codePointAt(0) ?? 0;
  if (ZERO_WIDTH.test(ch)) return 0;
  if (WIDE.test(ch)) return mono ? 1.2 : 1.15;
  if (mono) return 0.602;
  if (cp >= 0x20 && cp <= 0x7e) return ASCII_EM[cp - 0x20];
  if (cp === 0x2026 || cp === 0xfffd) return 1.05; // the ellipsis and the replacement character are a full em
  return 0.75;
}

/** Options of a text run: font size (px), bold, monospace. */
export interface TextStyle {
  size: number;
  bold?: boolean;
  mono?: boolean;
}

/**
 * Estimated width in px of `text` drawn in `style`: DejaVu Sans metrics (exact for ASCII in Debian's Chromium, and
 * wider than the UI fonts of other systems), bold as 1.14 times regular, other characters generously.
 */
export function textWidth(text: string, style: TextStyle): number {
  let em = 0;
  for (const ch of text) em += charEm(ch, style.mono ?? false);
  return em * style.size * (style.bold ? 1.14 : 1);
}

function splitGraphemes(text: string): string[] {
  return Array.from(graphemes.segment(text), (g) => g.segment);
}

/** The longest prefix of `text` (whole graphemes) that fits `width` followed by `suffix`, and the rest. */
function cut(text: string, width: number, style: TextStyle, suffix = ""): [string, string] {
  const parts = splitGraphemes(text);
  const room = width - textWidth(suffix, style);
  let used = 0;
  let n = 0;
  while (n < parts.length) {
    const w = textWidth(parts[n], style);
    if (used + w > room) break;
    used += w;
    n++;
  }
  if (n === 0 && suffix === "") n = Math.min(1, parts.length); // always progress
  return [parts.slice(0, n).join(""), parts.slice(n).join("")];
}

/** The lines of a fitted text, and whether something was cut off. */
export interface Fitted {
  lines: string[];
  truncated: boolean;
}

/**
 * Wraps `text` (whitespace collapsed) at spaces into at most `maxLines` lines of `width` px; a word wider than a
 * line is broken; when it does not all fit, the last line ends with `…`. Widths come from {@link textWidth}.
 */
export function fitLines(text: string, width: number, style: TextStyle, maxLines = 1): Fitted {
  const words = text.replace(/\s+/g, " ").trim().split(" ").filter((w) => w !== "");
  const lines: string[] = [];
  let current = "";
  let i = 0;
  while (i < words.length && lines.length < maxLines) {
    const candidate = current ? `${current} ${words[i]}` : words[i];
    if (textWidth(candidate, style) <= width) {
      current = candidate;
      i++;
    } else if (current) {
      lines.push(current);
      current = "";
    } else {
      const [head, tail] = cut(words[i], width, style);
      lines.push(head);
      if (tail) words[i] = tail;
      else i++;
    }
  }
  if (current && lines.length < maxLines) {
    lines.push(current);
    current = "";
  }
  const rest = [current, ...words.slice(i)].filter((w) => w !== "").join(" ");
  if (!rest) return { lines, truncated: false };
  const last = lines.length ? `${lines.pop()} ${rest}` : rest;
  const [head] = cut(last, width, style, "…");
  lines.push(`${head.trimEnd()}…`);
  return { lines, truncated: true };
}

// ---------------------------------------------------------------------------------------------------------------
// Primitives

/** One piece of text in a cell: its value (the full value goes to the tooltip when it is cut), style, lines. */
interface Piece {
  text: string;
  size?: number;
  bold?: boolean;
  mono?: boolean;
  fill?: string;
  cls?: string;
  maxLines?: number;
}

function baseline(top: number, size: number): number {
  return top + (LINE + size * 0.72) / 2;
}

/** Pieces stacked top-down from `top`, each wrapped/cut to `width`; returns the markup and the lines used. */
function pieces(x: number, top: number, width: number, list: Piece[]): { svg: Svg; lines: number } {
  let line = 0;
  const out = list.map((p) => {
    const style = { size: p.size ?? 13, bold: p.bold, mono: p.mono };
    const fit = fitLines(p.text, width, style, p.maxLines ?? 1);
    const drawn = fit.lines.length ? fit.lines : [""];
    const tspans = drawn.map((l, k) =>
      svg`<tspan x="${x}" y="${baseline(top + (line + k) * LINE, style.size)}">${l}${
        k < drawn.length - 1 ? " " : ""
      }</tspan>`
    );
    line += drawn.length;
    return svg`
      <g
        class="cell">${fit.truncated ? svg`<title>${p.text}</title>` : ""}<text${p.cls
          ? svg`
            class="${p.cls}"
          `
          : ""} font-size="${style.size}" font-weight="${p.bold ? "600" : "400"}"${p.mono
          ? svg`
            font-family="${MONO}"
          `
          : ""} fill="${p.fill ?? C.fg}">${tspans}</text></g>
    `;
  });
  return { svg: svg`${out}`, lines: line };
}

const BADGE_H = 18;
const BADGE_STYLE: TextStyle = { size: 11, bold: true };

/** A coloured badge (`class="badge st-<state>" data-state`) at (x, y); returns markup and width. */
function badge(x: number, y: number, state: string, text = state, maxWidth = 140): { svg: Svg; width: number } {
  const fit = fitLines(text, maxWidth - 16, BADGE_STYLE);
  const label = fit.lines[0] ?? "";
  const width = Math.ceil(textWidth(label, BADGE_STYLE)) + 16;
  const fill = STATE_FILL[state] ?? C.unk;
  return {
    width,
    svg: svg`
      <g class="badge st-${state}"
        data-state="${state}">${fit.truncated
          ? svg`<title>${text}</title>`
          : ""}<rect x="${x}" y="${y}" width="${width}" height="${BADGE_H}" rx="9" fill="${fill}"/><text x="${x +
          width / 2}" y="${y + 12.5}" text-anchor="middle" font-size="11" font-weight="700" fill="${C
          .white}">${label}</text></g>
    `,
  };
}

/** A link to `href` (always a `?…` URL of this page), drawn as underlined text ending at or starting from x. */
function link(x: number, y: number, href: string, text: string, attrs: { format?: string; anchor?: string } = {}): Svg {
  return svg`
    <a href="${href}" class="link"
      ${attrs.format
        ? svg`
          data-format="${attrs.format}"
        `
        : ""}><text x="${x}" y="${y}"${attrs.anchor
        ? svg`
          text-anchor="${attrs.anchor}"
        `
        : ""} font-size="13" fill="${C.link}" text-decoration="underline">${text}</text></a>
  `;
}

/** One availability bar as the HTML page draws it: a nested SVG, viewBox = bucket count, one rect per segment. */
export function svgBar(
  window: "24h" | "7d",
  segments: Segment[] | null,
  availability: string | null,
  x: number,
  y: number,
  width: number,
): Svg {
  const buckets = BAR_BUCKETS[window];
  const pct = percentText(availability);
  const rects = (segments ?? []).map((s) =>
    svg`
      <rect class="seg seg-${s.state}" data-state="${s.state}" x="${s.from}" y="0" width="${s.to - s.from}" height="1"
        fill="${STATE_FILL[s.state] ?? C.unk}">
        <title>${s.state}: ${formatTime(s.start)} – ${formatTime(s.end)}</title>
      </rect>
    `
  );
  return svg`
    <g class="availability" data-window="${window}">
      <svg class="bar" data-window="${window}" data-buckets="${buckets}" x="${x}" y="${y}"
        width="${width}" height="14" viewBox="0 0 ${buckets} 1" preserveAspectRatio="none" role="img"
        aria-label="${window === "24h"
          ? "24 h"
          : "7 days"}: ${pct}"><rect class="bar-bg" x="0" y="0" width="${buckets}" height="1" fill="${C
          .unk}"/>${rects}</svg>
      <text class="pct" data-window="${window}" x="${x}" y="${y + 29}" font-size="11.5"
        fill="${C.muted}">${pct}</text>
    </g>
  `;
}

// ---------------------------------------------------------------------------------------------------------------
// Tables

interface Column {
  label: string;
  width: number;
}

/** A cell: its height in px and how to draw it with its top-left content corner at (x, y) and `width` of room. */
interface Cell {
  height: number;
  draw(x: number, y: number, width: number): Svg;
}

/** A table row: the attributes of its `<g>` and its cells (pieces of text, or a drawn cell). */
interface Row {
  attrs: Svg;
  cells: Array<Cell | Piece[]>;
}

/** A text cell in a column `width` px wide: as high as the lines its pieces really take. */
function textCell(list: Piece[], width: number): Cell {
  const room = width - 2 * PAD_X;
  const lines = list.reduce((n, p) => {
    const style = { size: p.size ?? 13, bold: p.bold, mono: p.mono };
    return n + Math.max(1, fitLines(p.text, room, style, p.maxLines ?? 1).lines.length);
  }, 0);
  return { height: lines * LINE, draw: (x, y, w) => pieces(x, y, w, list).svg };
}

function badgeCell(state: string, text = state): Cell {
  return { height: BADGE_H, draw: (x, y, width) => badge(x, y, state, text, width).svg };
}

/**
 * A table at `top`: header row, then one `<g>` per row (`attrs` on it) with its cells vertically centred, each
 * clipped to its column. Returns the markup and its height.
 */
function table(id: string, top: number, columns: Column[], rows: Row[]): { svg: Svg; height: number } {
  const xs: number[] = [];
  let left = 0;
  for (const col of columns) {
    xs.push(left);
    left += col.width;
  }
  const clips = columns.map((col, i) =>
    svg`
      <clipPath id="${id}-c${i}" clipPathUnits="userSpaceOnUse">
        <rect x="${xs[i]}" y="-4" width="${col.width - 4}" height="400" />
      </clipPath>
    `
  );
  const headStyle = { size: 12.5, bold: true };
  const headFits = columns.map((col) => fitLines(col.label, col.width - 2 * PAD_X, headStyle, 2));
  const headH = Math.max(...headFits.map((f) => f.lines.length)) * LINE + 2 * PAD_Y;
  const head = columns.map((_col, i) => {
    const lines = headFits[i].lines;
    const y0 = (headH - lines.length * LINE) / 2;
    return svg`<text x="${xs[i] + PAD_X}" font-size="12.5" font-weight="600" fill="${C.fg}">${
      lines.map((l, k) => svg`<tspan x="${xs[i] + PAD_X}" y="${baseline(y0 + k * LINE, 12.5)}">${l}</tspan>`)
    }</text>`;
  });
  let y = headH;
  const body = rows.map((row) => {
    const laid = row.cells.map((c, i) => Array.isArray(c) ? textCell(c, columns[i].width) : c);
    const h = Math.max(...laid.map((c) => c.height)) + 2 * PAD_Y;
    const cells = laid.map((cell, i) =>
      svg`<g clip-path="url(#${id}-c${i})">${
        cell.draw(xs[i] + PAD_X, (h - cell.height) / 2, columns[i].width - 2 * PAD_X)
      }</g>`
    );
    const out = svg`
      <g ${row.attrs}
        transform="translate(0 ${y})"><rect class="row-bg" x="0" y="0" width="${CONTENT}" height="${h}" fill="${C
          .card}"/><line x1="0" y1="${h}" x2="${CONTENT}" y2="${h}" stroke="${C.line}"/>${cells}</g>
    `;
    y += h;
    return out;
  });
  return {
    height: y,
    svg: svg`
      <g id="${id}" class="table"
        transform="translate(${MARGIN} ${top})"><defs>${clips}</defs><rect x="0" y="0" width="${CONTENT}" height="${headH}" fill="${C
          .head}"/>${head}${body}<rect x="0.5" y="0.5" width="${CONTENT - 1}" height="${y - 1}" fill="none" stroke="${C
          .line}"/></g>
    `,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Sections: each takes the y where it starts and returns its markup and the y where the next one starts

interface Section {
  svg: Svg;
  y: number;
}

/** What the links of the board carry: only the read-only token (never the secret key), the search, the limit. */
export interface LinkOptions {
  token?: string;
  search?: string;
  limit: number;
}

/** A relative link (`?…`) to the page in `format`; carries `opts.token` (pass only the read-only token). */
export function pageHref(format: "html" | "svg" | "json", opts: LinkOptions): string {
  const p = new URLSearchParams({ format });
  if (opts.token) p.set("token", opts.token);
  if (opts.search) p.set("q", opts.search);
  p.set("limit", String(opts.limit));
  return `?${p}`;
}

function heading(y: number, text: string, id: string): Section {
  return {
    svg: svg`
      <text id="${id}" x="${MARGIN}" y="${y + 20}" font-size="16" font-weight="700"
        fill="${C.fg}">${text}</text>
    `,
    y: y + 32,
  };
}

function muted(y: number, text: string, id?: string, maxLines = 1): Section {
  const p = pieces(MARGIN, y, CONTENT, [{ text, size: 12, fill: C.muted, maxLines }]);
  return { svg: id ? svg`<g id="${id}">${p.svg}</g>` : p.svg, y: y + p.lines * LINE + 4 };
}

function header(y: number, opts: SvgOptions): Section {
  const links = [
    ["html", "HTML page"],
    ["json", "JSON"],
  ] as const;
  let x = MARGIN + CONTENT;
  const drawn = [];
  for (const [format, text] of [...links].reverse()) {
    drawn.push(link(x, y + 24, pageHref(format, opts), text, { format, anchor: "end" }));
    x -= textWidth(text, { size: 13 }) + 24;
  }
  return {
    svg: svg`
      <text x="${MARGIN}" y="${y + 26}" font-size="22" font-weight="700"
        fill="${C.fg}">WhatsApp channels status</text>
      <g id="links">${drawn}</g>
    `,
    y: y + 44,
  };
}

function banner(y: number, data: StatusData): Section {
  const s = data.summary;
  const shown = s.reasons.slice(0, 8);
  const more = s.reasons.length - shown.length;
  const reasons = more > 0 ? [...shown, `and ${more} more`] : shown;
  const h = 54 + reasons.length * 19 + (reasons.length ? 6 : 0);
  const lines = reasons.map((r, i) => {
    const fit = fitLines(r, CONTENT - 60, { size: 13 });
    return svg`
      <g
        class="reason">${fit.truncated ? svg`<title>${r}</title>` : ""}<text x="${MARGIN + 22}" y="${y + 62 +
          i * 19}" font-size="13" fill="${C.white}">• ${fit.lines[0] ?? ""}</text></g>
    `;
  });
  return {
    svg: svg`
      <g id="overall"
        data-overall="${s
          .overall}"><rect x="${MARGIN}" y="${y}" width="${CONTENT}" height="${h}" rx="8" fill="${OVERALL_FILL[
            s.overall
          ] ?? OVERALL_FILL.unknown}"/><text class="headline" x="${MARGIN + 18}" y="${y +
          34}" font-size="20" font-weight="700" fill="${C.white}">${OVERALL_TEXT[s.overall] ??
          s.overall}</text>${lines}</g>
    `,
    y: y + h,
  };
}

function card(x: number, y: number, w: number, h: number, attrs: Svg, inner: Svg): Svg {
  return svg`
    <g
      ${attrs}><rect x="${x}" y="${y}" width="${w}" height="${h}" rx="8" fill="${C.card}" stroke="${C
        .line}"/>${inner}</g>
  `;
}

function counts(y: number, data: StatusData): Section {
  const t = data.summary.tenants;
  const a = data.summary.alerts;
  const items: Array<[string, string, number]> = [
    ["healthy", "Healthy tenants", t.healthy],
    ["degraded", "Degraded", t.degraded],
    ["unhealthy", "Unhealthy", t.unhealthy],
    ["unknown", "Not checked yet", t.unknown],
    ["alerts", "Firing alerts", a.firing],
  ];
  const w = 184;
  const out = items.map(([key, label, n], i) => {
    const x = MARGIN + i * (w + 12);
    return card(
      x,
      y,
      w,
      64,
      svg`class="count" data-count="${key}"`,
      svg`
        <text x="${x + 14}" y="${y + 24}" font-size="12.5" font-weight="600" fill="${C.fg}">${label}</text>
        <text class="num" x="${x + 14}" y="${y + 51}" font-size="22" font-weight="700" fill="${C.fg}">${n}</text>
      `,
    );
  });
  return { svg: svg`${out}`, y: y + 64 };
}

function services(y0: number, data: StatusData): Section {
  const h = heading(y0, "Services", "services");
  let y = h.y;
  const s = data.summary;
  const w = 320;
  const cards = SERVICES.map(([key, label], i) => {
    const x = MARGIN + i * (w + 12);
    const svc = s.services?.[key];
    const status = svc?.status ?? "unknown";
    const detail = pieces(x + 14, y + 50, w - 28, [{ text: serviceDetail(svc) || "–", size: 12, fill: C.muted }]);
    return card(
      x,
      y,
      w,
      76,
      svg`class="service" data-service="${key}"`,
      svg`
        <text x="${x + 14}" y="${y + 22}" font-size="13" font-weight="600"
          fill="${C.fg}">${label}</text>${badge(x + 14, y + 30, status).svg}${detail.svg}
      `,
    );
  });
  y += 76 + 10;
  const lc = s.lastCheck;
  let last: Svg;
  if (lc) {
    const lead = `Last health check ${formatTime(lc.startedAt)} (${formatDuration(lc.ageSeconds)} ago):`;
    const leadW = textWidth(lead, { size: 12 });
    const b = badge(MARGIN + leadW + 6, y + 1, lc.status);
    const err = lc.error
      ? pieces(MARGIN + leadW + b.width + 14, y + 2, CONTENT - leadW - b.width - 14, [{
        text: lc.error,
        size: 12,
        fill: C.muted,
      }]).svg
      : "";
    last = svg`<text x="${MARGIN}" y="${
      baseline(y + 2, 12)
    }" font-size="12" fill="${C.muted}">${lead}</text>${b.svg}${err}`;
  } else {
    last = svg`<text x="${MARGIN}" y="${
      baseline(y + 2, 12)
    }" font-size="12" fill="${C.muted}">No health-check run recorded yet.</text>`;
  }
  y += 24;
  return { svg: svg`${h.svg}${cards}<g id="last-check">${last}</g>`, y };
}

function servers(y0: number, data: StatusData): Section {
  const list = data.servers ?? [];
  if (!list.length) return { svg: svg``, y: y0 - 20 };
  const h = heading(y0, `Evolution servers (${list.length})`, "servers-heading");
  const columns: Column[] = [
    { label: "Server", width: 260 },
    { label: "State", width: 120 },
    { label: "Tenants", width: 100 },
    { label: "Not healthy", width: 110 },
    { label: "Version · latency · error", width: 500 },
    { label: "Alert", width: 246 },
  ];
  const rows: Row[] = list.map((s) => ({
    attrs: svg`class="server" data-server="${s.name}" data-state="${s.state}"`,
    cells: [
      [{ text: s.is_default ? `${s.name} (default)` : s.name, cls: "name" }],
      badgeCell(s.state),
      [{ text: String(s.tenants), size: 12.5 }],
      [{ text: String(s.tenants_not_healthy), size: 12.5 }],
      [{ text: serverDetail(s), size: 12.5, maxLines: 2 }],
      [{ text: s.down_alert ?? "–", size: 12.5, maxLines: 2 }],
    ],
  }));
  const t = table("servers", h.y, columns, rows);
  return { svg: svg`${h.svg}${t.svg}`, y: h.y + t.height };
}

function alerts(y0: number, asOf: Date, data: StatusData): Section {
  const h = heading(y0, `Open alerts (${data.alertTotal})`, "alerts-heading");
  let y = h.y;
  if (!data.alerts.length) {
    const m = muted(y, "No alert is firing.", "alerts");
    return { svg: svg`${h.svg}${m.svg}`, y: m.y };
  }
  const columns: Column[] = [
    { label: "Severity", width: 100 },
    { label: "Alert", width: 540 },
    { label: "Tenant", width: 240 },
    { label: "Since", width: 180 },
    { label: "For", width: 110 },
    { label: "Notification", width: 166 },
  ];
  const rows: Row[] = data.alerts.map((a: AlertRow) => ({
    attrs: svg`class="alert" data-fingerprint="${a.fingerprint}" data-severity="${a.severity}"`,
    cells: [
      badgeCell(a.severity),
      [{ text: a.summary, maxLines: 2, cls: "summary" }],
      a.tenant_slug ? [{ text: a.tenant_slug, cls: "tenant" }] : [{ text: "platform", fill: C.muted, cls: "tenant" }],
      [{ text: formatTime(a.started_at), size: 12.5 }],
      [{ text: since(asOf, a.started_at), size: 12.5 }],
      [{ text: a.inhibited_by ? `silenced by ${a.inhibited_by}` : "–", size: 12.5, maxLines: 2 }],
    ],
  }));
  const t = table("alerts", y, columns, rows);
  y += t.height + 6;
  let more: Svg | "" = "";
  if (data.alertTotal > data.alerts.length) {
    const m = muted(y, `Showing ${data.alerts.length} of ${data.alertTotal} firing alerts.`);
    more = m.svg;
    y = m.y;
  }
  return { svg: svg`${h.svg}${t.svg}${more}`, y };
}

function since(asOf: Date, at: Date | string | null): string {
  if (!at) return "–";
  return formatDuration((asOf.getTime() - new Date(at).getTime()) / 1000);
}

/** `2026-12-02 11:53 UTC` as two lines: the date, then the time. */
function timeLines(value: Date | string | null): Piece[] {
  const t = formatTime(value);
  const i = t.indexOf(" ");
  if (i < 0) return [{ text: t, size: 12.5 }];
  return [{ text: t.slice(0, i), size: 12.5 }, { text: t.slice(i + 1), size: 11.5, fill: C.muted }];
}

const TENANT_COLUMNS: Column[] = [
  { label: "Tenant", width: 236 },
  { label: "State", width: 104 },
  { label: "For", width: 144 },
  { label: "Issue", width: 178 },
  { label: "Last check", width: 100 },
  { label: "Last webhook event", width: 126 },
  { label: "Alerts", width: 62 },
  { label: "Last 24 h", width: 193 },
  { label: "Last 7 days", width: 193 },
];

function tenantRow(asOf: Date, t: TenantRow): Row {
  const bars = (window: "24h" | "7d", segments: Segment[] | null, availability: string | null): Cell => ({
    height: 32,
    draw: (x, y, width) => svgBar(window, segments, availability, x, y, width - 4),
  });
  return {
    attrs: svg`class="tenant" data-slug="${t.tenant_slug}" data-state="${t.state}"`,
    cells: [
      [
        { text: t.tenant_name ?? t.tenant_slug, cls: "tenant-name", maxLines: 2 },
        { text: t.tenant_slug, size: 11.5, fill: C.muted, cls: "slug" },
      ],
      badgeCell(t.state),
      t.since
        ? [{ text: since(asOf, t.since), size: 12.5 }, { text: formatTime(t.since), size: 11, fill: C.muted }]
        : [{ text: "–", size: 12.5 }],
      [{ text: t.issue ?? "–", size: 12.5, maxLines: 2, cls: "issue" }],
      timeLines(t.last_checked_at),
      timeLines(t.last_event_at),
      [{ text: String(t.open_alerts), size: 12.5, cls: "open-alerts" }],
      bars("24h", t.segments_24h, t.availability_24h),
      bars("7d", t.segments_7d, t.availability_7d),
    ],
  };
}

function tenants(y0: number, asOf: Date, data: StatusData, opts: SvgOptions): Section {
  const h = heading(y0, "Tenants", "tenants-heading");
  let y = h.y;
  const shown = data.tenants.length;
  const scope = opts.search ? ` matching “${opts.search}”` : "";
  const m = muted(y, `Showing ${shown} of ${data.tenantTotal} active tenants${scope}, worst first.`, "tenant-count");
  y = m.y;
  let hint: Svg | "" = "";
  if (shown < data.tenantTotal) {
    const next = Math.min(data.tenantTotal, TENANT_LIMIT.max);
    const text = next === data.tenantTotal ? `Show all ${next}` : `Show the first ${next}`;
    const lead = "Add &q=<slug or name> to the address to search, or";
    const leadW = textWidth(lead, { size: 12 });
    hint = svg`<text x="${MARGIN}" y="${baseline(y, 12)}" font-size="12" fill="${C.muted}">${lead}</text>${
      link(MARGIN + leadW + 6, baseline(y, 12), pageHref("svg", { ...opts, limit: next }), text, { format: "svg" })
    }`;
    y += LINE + 4;
  }
  y += 4;
  if (!shown) {
    const e = muted(y, "No tenant to show.", "tenants");
    return { svg: svg`${h.svg}${m.svg}${hint}${e.svg}`, y: e.y };
  }
  const t = table("tenants", y, TENANT_COLUMNS, data.tenants.map((r) => tenantRow(asOf, r)));
  return { svg: svg`${h.svg}${m.svg}${hint}${t.svg}`, y: y + t.height };
}

function jobs(y0: number, asOf: Date, data: StatusData): Section {
  const h = heading(y0, "Jobs", "jobs-heading");
  const y = h.y;
  if (!data.jobs.length) {
    const e = muted(y, "No job is scheduled.", "jobs");
    return { svg: svg`${h.svg}${e.svg}`, y: e.y };
  }
  const columns: Column[] = [
    { label: "Job", width: 170 },
    { label: "Schedule (UTC)", width: 200 },
    { label: "Status", width: 120 },
    { label: "Last run", width: 210 },
    { label: "Last success", width: 170 },
    { label: "Next due", width: 170 },
    { label: "Notes", width: 296 },
  ];
  const rows: Row[] = data.jobs.map((j: JobRow) => {
    const b = jobBadge(j);
    const schedule: Piece[] = [{ text: j.schedule ?? "not scheduled", size: 12, mono: true }];
    if (j.active === false) schedule.push({ text: "(paused)", size: 11.5, fill: C.muted });
    const lastRun: Piece[] = [{ text: formatTime(j.last_run_at), size: 12.5 }];
    if (j.last_run_at) {
      lastRun.push({
        text: `${since(asOf, j.last_run_at)} ago${
          j.last_run_duration_ms !== null ? `, ${j.last_run_duration_ms} ms` : ""
        }`,
        size: 11.5,
        fill: C.muted,
      });
    }
    const notes = j.last_run_error ?? (j.missed ? `should have succeeded by ${formatTime(j.expected_by)}` : "–");
    return {
      attrs: svg`class="job" data-job="${j.job}" data-missed="${String(j.missed)}"`,
      cells: [
        [{ text: j.job, size: 13 }],
        schedule,
        badgeCell(b.state, b.text),
        lastRun,
        [{ text: formatTime(j.last_success_at), size: 12.5 }],
        [{ text: formatTime(j.next_due_at), size: 12.5 }],
        [{ text: notes, size: 12.5, maxLines: 2, cls: "notes" }],
      ],
    };
  });
  const t = table("jobs", y, columns, rows);
  return { svg: svg`${h.svg}${t.svg}`, y: y + t.height };
}

/** Options of {@link renderSvg}: the page's instant and query; `token` only when it is the read-only token. */
export interface SvgOptions extends LinkOptions {
  asOf: Date;
}

/** The whole board as a standalone SVG document (XML declaration included). */
export function renderSvg(data: StatusData, opts: SvgOptions): string {
  const s = data.summary;
  const parts: Svg[] = [];
  let y = 24;
  for (
    const section of [
      (at: number) => header(at, opts),
      (at: number) => banner(at, data),
      (at: number) => muted(at + 8, `As of ${formatTime(opts.asOf)}`, "as-of"),
      (at: number) => counts(at + 8, data),
      (at: number) => services(at + 20, data),
      (at: number) => servers(at + 20, data),
      (at: number) => alerts(at + 8, opts.asOf, data),
      (at: number) => tenants(at + 20, opts.asOf, data, opts),
      (at: number) => jobs(at + 20, opts.asOf, data),
    ]
  ) {
    const out = section(y);
    parts.push(out.svg);
    y = out.y;
  }
  const height = Math.ceil(y + MARGIN);
  const doc = svg`
    <svg xmlns="http://www.w3.org/2000/svg" width="${SVG_WIDTH}" height="${height}" viewBox="0 0 ${SVG_WIDTH} ${height}"
      font-family="${FONT}"
      data-overall="${s.overall}"><title>${OVERALL_TEXT[s.overall] ??
        s.overall} · WhatsApp status</title><rect width="${SVG_WIDTH}" height="${height}" fill="${C.bg}"/>${parts}</svg>
  `;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${doc}\n`;
}
