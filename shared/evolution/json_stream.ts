/**
 * @module
 * An incremental reader for a JSON document whose root is an array (Evolution's instance listing): the body is read
 * chunk by chunk and each element is handed over, parsed, as soon as its text is complete, so a listing of 50,000
 * rows of 1–2 KB never exists whole in memory, neither as text nor as objects; the caller keeps only what it needs of
 * each row. A root that is not an array (v1.8 answers one object when the listing is filtered by name) is parsed
 * whole and handed over as the one value.
 *
 * Why a splitter of our own and not a streaming JSON parser from npm (`@streamparser/json` 0.0.26, `stream-json`,
 * `clarinet`, `jsonparse` were the candidates): those tokenize every character in JavaScript and rebuild every value
 * of every row themselves, where only the element boundaries are needed here. This reader only follows strings,
 * escapes and nesting depth to find where each element ends (skipping string contents with `indexOf`), then hands
 * the element's text to the engine's own `JSON.parse`: every row is parsed exactly as the non-streaming path parses
 * it (same numbers, escapes, duplicate keys, errors), then checked by the same zod schema, and the bundle adds no
 * dependency to pin, audit and deploy. What it accepts is JSON: an element `JSON.parse` refuses, text after the root,
 * or a body that ends inside the root is a {@link JsonStreamError}.
 */

/** The body is not the JSON the reader expects (malformed, truncated, or text after the root value). */
export class JsonStreamError extends Error {
  override name = "JsonStreamError";
  readonly code = "bad_json";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const QUOTE = 34,
  COMMA = 44,
  OPEN_BRACE = 123,
  CLOSE_BRACE = 125,
  OPEN_BRACKET = 91,
  CLOSE_BRACKET = 93;

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

/**
 * Reads `body` (UTF-8 JSON) and calls `onItem` with each element of its root array, in order, as soon as it is
 * complete. Answers `{ root: "array", items }`, or `{ root: "value", value }` when the root is not an array (the
 * value is not passed to `onItem`). An error thrown by `onItem` stops the reading (the body is cancelled) and is
 * thrown as is.
 */
export async function readJsonArray(
  body: ReadableStream<Uint8Array>,
  onItem: (item: unknown, index: number) => void,
): Promise<{ root: "array"; items: number } | { root: "value"; value: unknown }> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const reader = body.getReader();
  // where the reader is: before the root, inside the root array, inside a non-array root, after the root
  let phase: "before" | "array" | "value" | "after" = "before";
  let depth = 0; // nesting depth, the root array being 1
  let inString = false;
  let escapeCarry = false; // the previous chunk ended on a backslash inside a string
  let parts: string[] = []; // the current element's (or non-array root's) text so far
  let items = 0;

  const flush = () => {
    const text = parts.length === 1 ? parts[0] : parts.join("");
    parts = [];
    if (text.trim() === "") {
      if (items === 0) return false; // `[]` or `[ ]`: no element
      throw new JsonStreamError(`element ${items} of the array is empty`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new JsonStreamError(`element ${items} of the array is not JSON: ${(error as Error).message}`, {
        cause: error,
      });
    }
    onItem(value, items++);
    return true;
  };

  const scan = (s: string) => {
    let i = 0;
    const n = s.length;
    let start = phase === "array" || phase === "value" ? 0 : -1; // where the current element's text starts in s
    if (escapeCarry) {
      escapeCarry = false;
      i = 1;
    }
    // the next backslash of the chunk, found once and reused until passed (most rows have none: looking for it
    // again from every string would scan the rest of the chunk once per string)
    let nextBackslash = -2;
    while (i < n) {
      if (inString) {
        const q = s.indexOf('"', i);
        if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = s.indexOf("\\", i);
        const b = nextBackslash;
        if (b !== -1 && (q === -1 || b < q)) {
          if (b + 1 >= n) {
            escapeCarry = true;
            i = n;
          } else i = b + 2;
        } else if (q !== -1) {
          inString = false;
          i = q + 1;
        } else i = n;
        continue;
      }
      const c = s.charCodeAt(i);
      if (phase === "before") {
        if (isSpace(c) || (c === 0xfeff && i === 0)) {
          i++;
          continue;
        }
        if (c === OPEN_BRACKET) {
          phase = "array";
          depth = 1;
          start = i + 1;
          i++;
          continue;
        }
        phase = "value"; // any other root: kept whole, parsed at the end
        start = i;
        continue;
      }
      if (phase === "after") {
        if (!isSpace(c)) throw new JsonStreamError("text after the root array");
        i++;
        continue;
      }
      if (c === QUOTE) inString = true;
      else if (phase === "array") {
        if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
        else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
          depth--;
          if (depth === 0) {
            parts.push(s.slice(start, i));
            flush();
            phase = "after";
            start = -1;
          } else if (depth < 0) throw new JsonStreamError("unbalanced brackets");
        } else if (c === COMMA && depth === 1) {
          parts.push(s.slice(start, i));
          if (!flush()) throw new JsonStreamError("a comma with no element before it");
          start = i + 1;
        }
      }
      i++;
    }
    if (start !== -1 && start < n && (phase === "array" || phase === "value")) parts.push(s.slice(start));
  };

  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let text: string;
      try {
        text = decoder.decode(value, { stream: true });
      } catch (error) {
        throw new JsonStreamError("the body is not UTF-8", { cause: error });
      }
      if (text) scan(text);
    }
    let tail: string;
    try {
      tail = decoder.decode();
    } catch (error) {
      throw new JsonStreamError("the body is not UTF-8", { cause: error });
    }
    if (tail) scan(tail);
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  } finally {
    reader.releaseLock();
  }
  if (phase === "before") throw new JsonStreamError("the body is empty");
  if (phase === "array") throw new JsonStreamError("the body ends inside the array");
  if (phase === "value") {
    const text = parts.join("");
    try {
      return { root: "value", value: JSON.parse(text) };
    } catch (error) {
      throw new JsonStreamError(`the body is not JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  return { root: "array", items };
}
