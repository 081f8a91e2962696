import assert from "node:assert/strict";
import { cleanText, inspectJson, MAX_JSON_DEPTH, printable, sanitizeJson } from "../shared/strict_json.ts";

function problem(text: string) {
  const r = inspectJson(text);
  assert.equal(r.ok, false, `expected a problem in ${text.slice(0, 80)}`);
  return (r as { ok: false; problem: { path: string; code: string; message: string } }).problem;
}

Deno.test("inspectJson accepts what the database stores and JSON.parse reads alike", () => {
  for (
    const text of [
      `{}`,
      `[]`,
      `"x"`,
      `0`,
      `-1.5e3`,
      `{"a":[1,2,{"b":"\\ud83d\\ude00 ok é \\n"}],"c":null,"d":true,"e":false}`,
      `{"event":"connection.update","data":{"state":"open","statusReason":200},"date_time":"2026-01-01T10:00:00.000Z"}`,
      `{"n":9007199254740991,"f":1.7976931348623157e308,"k":{"a":1},"k2":{"a":2}}`,
      ' \n\t{"a" : [ ] , "b" : { } }\n',
    ]
  ) {
    const r = inspectJson(text);
    assert.ok(r.ok, `refused ${text}: ${JSON.stringify(r)}`);
    assert.deepEqual(r.value, JSON.parse(text));
  }
});

Deno.test("inspectJson names the path of a NUL, a lone surrogate, a duplicate key, a huge number", () => {
  assert.deepEqual(
    { ...problem(`{"data":{"message":[{"text":"a\\u0000b"}]}}`), message: undefined },
    { path: "data.message[0].text", code: "nul", message: undefined },
  );
  assert.equal(problem(`{"instance":"x\\u0000"}`).path, "instance");
  assert.equal(problem(`{"a":"\\ud800"}`).code, "lone_surrogate");
  assert.equal(problem(`{"a":"\\udc00x"}`).code, "lone_surrogate");
  assert.equal(problem(`{"a":"x\\ud83d"}`).code, "lone_surrogate");
  const dup = problem(`{"data":{"state":"open","state":"close"}}`);
  assert.deepEqual([dup.path, dup.code], ["data.state", "duplicate_key"]);
  assert.match(dup.message, /appears twice/);
  assert.equal(problem(`{"a":[1, 2, 12345678901234567890]}`).path, "a[2]");
  assert.equal(problem(`{"a":1e999}`).code, "unsafe_number");
  assert.equal(problem(`{"a\\u0000":1}`).code, "nul");
  assert.match(problem(`{"a\\u0000":1}`).message, /the key/);
  assert.equal(problem(`{"we ird":{"x":"\\u0000"}}`).path, `["we ird"].x`);
});

Deno.test("inspectJson refuses nesting past the limit without recursion, even 100,000 deep", () => {
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  const p = problem(deep);
  assert.equal(p.code, "too_deep");
  assert.match(p.message, new RegExp(`deeper than ${MAX_JSON_DEPTH}`));
  const okDeep = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
  assert.ok(inspectJson(okDeep).ok);
  assert.equal(
    problem(`{"data":` + '{"a":'.repeat(MAX_JSON_DEPTH) + "1" + "}".repeat(MAX_JSON_DEPTH + 1)).code,
    "too_deep",
  );
});

Deno.test("inspectJson leaves syntax errors to JSON.parse's wording", () => {
  for (const text of [`{`, `{"a":}`, `{"a":"x`, `[1,]`, `nul`, `{"a":"\\uZZZZ"}`, "\u0000"]) {
    const r = inspectJson(text);
    assert.equal(r.ok, false, text);
  }
  assert.equal(problem(`{"a" 1}`).code, "syntax");
});

Deno.test("printable, cleanText and sanitizeJson make hostile text safe to show and to store", () => {
  assert.equal(printable("a\u0000\ud800\u2028"), `"a\\u0000\\ud800\\u2028"`);
  assert.equal(printable("x".repeat(100)).length, 63);
  assert.equal(cleanText("a\u0000b\ud800c\udc00d\ud83d\ude00"), "a\ufffdb\ufffdc\ufffdd\ud83d\ude00");
  let deep: unknown = "end";
  for (let i = 0; i < 10_000; i++) deep = { k: deep };
  const s = sanitizeJson({ "a\u0000": ["\ud800", 2 ** 60, 1.5], deep }) as Record<string, unknown>;
  assert.deepEqual(s["a\ufffd"], ["\ufffd", String(2 ** 60), 1.5]);
  const text = JSON.stringify(s);
  assert.ok(inspectJson(text).ok, "a sanitised value passes the checks");
  assert.match(text, /\[too deep\]/);
});
