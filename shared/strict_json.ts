/**
 * @module
 * JSON the database can store and every reader can trust, checked before anything else sees it. `JSON.parse` takes
 * text Postgres refuses (`\u0000`: "unsupported Unicode escape sequence"; a lone surrogate `\ud800`; nesting
 * 100,000 deep: "stack depth limit exceeded") or that means two things (a duplicate key: the last one wins in
 * JavaScript, the first in some other readers; an integer past 2^53 silently loses digits). {@link inspectJson}
 * finds the first such place and names it by its path (`data.message[3].text`), so the caller answers a 4xx naming
 * the field instead of failing later with a 5xx.
 *
 * Why not a library: `secure-json-parse` and `@hapi/bourne` only guard `__proto__`; `@streamparser/json` (0.0.x)
 * yields tokens but checks none of these, so its tokens would need this same walk. One pass over text that already
 * parsed, with an explicit stack (no recursion: depth cannot overflow it).
 */

/** Deeper than this is refused (Evolution's deepest payloads, a quoted message in a message, are about 12). */
export const MAX_JSON_DEPTH = 64;

/** What is wrong, and where. */
export interface JsonProblem {
  /** The path of the offending value or key, `$` for the document (`data.key`, `data.list[2]`). */
  path: string;
  /** `nul`, `lone_surrogate`, `too_deep`, `duplicate_key`, `unsafe_number` or `syntax`. */
  code: "nul" | "lone_surrogate" | "too_deep" | "duplicate_key" | "unsafe_number" | "syntax";
  message: string;
}

export type Inspected = { ok: true; value: unknown } | { ok: false; problem: JsonProblem };

interface Frame {
  kind: "object" | "array";
  path: string;
  keys?: Set<string>;
  index: number;
  /** the key whose value is being read (objects) */
  key?: string;
}

/** Parses `text` as JSON and checks it; never throws. */
export function inspectJson(text: string, maxDepth = MAX_JSON_DEPTH): Inspected {
  const scanned = scan(text, maxDepth);
  if (scanned) return { ok: false, problem: scanned };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, problem: { path: "$", code: "syntax", message: `Invalid JSON: ${(e as Error).message}` } };
  }
}

/** A path segment for a key: `.key` for identifiers, `["…"]` (escaped, shortened) for the rest. */
function segment(key: string): string {
  return /^[A-Za-z_$][\w$]{0,63}$/.test(key) ? `.${key}` : `[${printable(key)}]`;
}

/** A string shown in a message: JSON-escaped (NUL, controls and lone surrogates visible, never raw), short. */
export function printable(s: string, max = 60): string {
  const cut = s.length > max ? s.slice(0, max) + "…" : s;
  // JSON.stringify escapes controls and lone surrogates (ES2019); these are left raw by it
  return JSON.stringify(cut).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function childPath(top: Frame | undefined): string {
  if (!top) return "$";
  const base = top.path === "$" ? "" : top.path;
  if (top.kind === "array") return `${base}[${top.index}]`;
  return top.key === undefined ? base || "$" : (base + segment(top.key)).replace(/^\./, "");
}

/**
 * One pass over the text: returns the first problem, or null. Syntax is left to `JSON.parse` (this walk stops at
 * the first character it does not expect and lets the parser word the error).
 */
function scan(text: string, maxDepth: number): JsonProblem | null {
  const stack: Frame[] = [];
  let i = 0;
  const n = text.length;
  // whether the next string in an object is a key
  let expectKey = false;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x20 || ch === 0x0a || ch === 0x0d || ch === 0x09 || ch === 0x2c /* , */ || ch === 0x3a /* : */) {
      if (ch === 0x2c) {
        const top = stack[stack.length - 1];
        if (top?.kind === "object") expectKey = true;
        else if (top) top.index++;
      }
      i++;
      continue;
    }
    if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      const path = childPath(stack[stack.length - 1]);
      if (stack.length >= maxDepth) {
        return { path, code: "too_deep", message: `'${path}' is nested deeper than ${maxDepth} levels` };
      }
      if (ch === 0x7b) {
        stack.push({ kind: "object", path, keys: new Set(), index: 0 });
        expectKey = true;
      } else {
        stack.push({ kind: "array", path, index: 0 });
        expectKey = false;
      }
      i++;
      continue;
    }
    if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
      const top = stack[stack.length - 1];
      expectKey = false;
      if (top?.kind === "object") top.key = undefined;
      i++;
      continue;
    }
    if (ch === 0x22 /* " */) {
      const r = readString(text, i);
      if (r === null) return null; // unterminated: the parser says so
      const top = stack[stack.length - 1];
      if (top?.kind === "object" && expectKey) {
        const where = childPath({ ...top, key: r.value });
        if (r.problem) return problemIn(where, r.problem, true);
        if (top.keys!.has(r.value)) {
          return { path: where, code: "duplicate_key", message: `'${where}' appears twice in the same object` };
        }
        top.keys!.add(r.value);
        top.key = r.value;
        expectKey = false;
      } else if (r.problem) {
        return problemIn(childPath(top), r.problem, false);
      }
      i = r.end;
      continue;
    }
    if (ch === 0x2d /* - */ || (ch >= 0x30 && ch <= 0x39)) {
      let j = i + 1;
      while (j < n) {
        const c = text.charCodeAt(j);
        if ((c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d) j++;
        else break;
      }
      const literal = text.slice(i, j);
      const value = Number(literal);
      const integer = !/[.eE]/.test(literal);
      if (!Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) {
        const where = childPath(stack[stack.length - 1]);
        return {
          path: where,
          code: "unsafe_number",
          message: `'${where}' is a number beyond what can be stored exactly (${printable(literal, 30)})`,
        };
      }
      i = j;
      continue;
    }
    // true, false, null: skip the letters
    if (ch >= 0x61 && ch <= 0x7a) {
      i++;
      continue;
    }
    return null; // unexpected: syntax, for the parser to word
  }
  return null;
}

function problemIn(path: string, problem: "nul" | "lone_surrogate", isKey: boolean): JsonProblem {
  const what = isKey ? `the key '${path}'` : `'${path}'`;
  return problem === "nul"
    ? { path, code: "nul", message: `${what} contains a NUL character (\\u0000), which cannot be stored` }
    : { path, code: "lone_surrogate", message: `${what} contains a lone UTF-16 surrogate, which is not text` };
}

/** Reads the string starting at `start` (a quote); its decoded value, where it ends, and any problem in it. */
function readString(
  text: string,
  start: number,
): { value: string; end: number; problem?: "nul" | "lone_surrogate" } | null {
  let i = start + 1;
  let out = "";
  let problem: "nul" | "lone_surrogate" | undefined;
  let runStart = i;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      out += text.slice(runStart, i);
      return { value: out, end: i + 1, problem: problem ?? loneSurrogate(out) };
    }
    if (c === 0x5c /* \ */) {
      out += text.slice(runStart, i);
      const e = text.charCodeAt(i + 1);
      if (e === 0x75 /* u */) {
        const code = parseInt(text.slice(i + 2, i + 6), 16);
        if (Number.isNaN(code)) return null;
        if (code === 0) problem ??= "nul";
        out += String.fromCharCode(code);
        i += 6;
      } else {
        out += e === 0x6e
          ? "\n"
          : e === 0x74
          ? "\t"
          : e === 0x72
          ? "\r"
          : e === 0x62
          ? "\b"
          : e === 0x66
          ? "\f"
          : text[i + 1];
        i += 2;
      }
      runStart = i;
      continue;
    }
    if (c === 0) problem ??= "nul"; // raw NUL: JSON.parse refuses it too, but name it
    i++;
  }
  return null;
}

/** "lone_surrogate" when `s` holds a high surrogate not followed by a low one, or a low one alone. */
function loneSurrogate(s: string): "lone_surrogate" | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      return "lone_surrogate";
    }
    if (c >= 0xdc00 && c <= 0xdfff) return "lone_surrogate";
  }
  return undefined;
}

/** "nul" or "lone_surrogate" when `s` holds one (NUL first), else undefined. */
export function textProblem(s: string): "nul" | "lone_surrogate" | undefined {
  return s.includes("\u0000") ? "nul" : loneSurrogate(s);
}

/** `s` without NUL and lone surrogates (each becomes U+FFFD): a string Postgres and every reader accept. */
export function cleanText(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/\u0000/g, "\ufffd").replace(
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    "\ufffd",
  );
}

/**
 * A copy of `value` the database can store whatever it held: strings and keys cleaned ({@link cleanText}), numbers
 * past 2^53 as strings, anything deeper than `maxDepth` replaced by the string `"[too deep]"`. Iterative.
 */
export function sanitizeJson(value: unknown, maxDepth = MAX_JSON_DEPTH): unknown {
  const fix = (v: unknown): unknown => {
    if (typeof v === "string") return cleanText(v);
    if (typeof v === "number") {
      return Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v)) ? v : String(v);
    }
    return v;
  };
  if (value === null || typeof value !== "object") return fix(value);
  const root: unknown = Array.isArray(value) ? [] : {};
  const work: Array<{ src: unknown; dst: Record<string, unknown> | unknown[]; depth: number }> = [
    { src: value, dst: root as Record<string, unknown>, depth: 1 },
  ];
  while (work.length) {
    const { src, dst, depth } = work.pop()!;
    const entries: Array<[string | number, unknown]> = Array.isArray(src)
      ? src.map((v, k) => [k, v])
      : Object.entries(src as Record<string, unknown>);
    for (const [k, v] of entries) {
      let out: unknown;
      if (v !== null && typeof v === "object") {
        if (depth >= maxDepth) out = "[too deep]";
        else {
          out = Array.isArray(v) ? [] : {};
          work.push({ src: v, dst: out as Record<string, unknown>, depth: depth + 1 });
        }
      } else out = fix(v);
      if (Array.isArray(dst)) dst[k as number] = out;
      else dst[cleanText(String(k))] = out;
    }
  }
  return root;
}
