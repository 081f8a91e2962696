// The shared HTTP plumbing, in process (app.request): auth, body limits, content type, JSON and schema errors.
import assert from "node:assert/strict";
import { z } from "zod";
import { createFunctionApp, MAX_BODY_BYTES, readJson, requireSecretKey, timingSafeEqual } from "../shared/http.ts";

const KEY = "sb_secret_test_0123456789";
const CRON_KEY = "sb_secret_cron_9876543210";

function app() {
  const a = createFunctionApp("demo");
  a.use("*", requireSecretKey({ default: KEY, cron: CRON_KEY }));
  a.post("/", async (c) => c.json(await readJson(c, z.object({ slug: z.string().min(1) }).strict())));
  return a;
}

const post = (body: BodyInit | null, headers: Record<string, string> = {}) =>
  app().request("/demo", {
    method: "POST",
    body,
    headers: { apikey: KEY, "content-type": "application/json", ...headers },
  });

Deno.test("timingSafeEqual() compares whole strings", () => {
  assert.equal(timingSafeEqual("abc", "abc"), true);
  assert.equal(timingSafeEqual("abc", "abd"), false);
  assert.equal(timingSafeEqual("abc", "abcd"), false);
  assert.equal(timingSafeEqual("", "a"), false);
});

Deno.test("requireSecretKey() accepts apikey or Bearer and refuses anything else with 401 JSON", async () => {
  const ok1 = await post('{"slug":"a"}');
  assert.equal(ok1.status, 200);
  const ok2 = await app().request("/demo", {
    method: "POST",
    body: '{"slug":"a"}',
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
  });
  assert.equal(ok2.status, 200);
  const ok3 = await post('{"slug":"a"}', { apikey: CRON_KEY });
  assert.equal(ok3.status, 200, "any key of the set, not only the default one");
  for (
    const headers of [
      {},
      { apikey: "wrong" },
      { authorization: "Bearer wrong" },
      { authorization: KEY },
      { apikey: `${KEY}x` },
      { apikey: KEY.slice(0, -1) },
    ] as Record<
      string,
      string
    >[]
  ) {
    const res = await app().request("/demo", { method: "POST", body: "{}", headers });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, "unauthorized");
  }
});

Deno.test("readJson() maps bad input to 4xx with a message naming what was wrong", async (t) => {
  await t.step("invalid JSON → 400 invalid_json", async () => {
    const res = await post("{nope");
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.code, "invalid_json");
  });
  await t.step("wrong type → 400 naming the field", async () => {
    const res = await post('{"slug":5}');
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.match(body.error.message, /'slug'/);
    assert.equal(body.error.details[0].field, "slug");
  });
  await t.step("extra field → 400 naming it", async () => {
    const res = await post('{"slug":"a","extra":1}');
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /extra/);
  });
  await t.step("missing field → 400 naming it", async () => {
    const res = await post("{}");
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /'slug'/);
  });
  await t.step("wrong content type → 415", async () => {
    const res = await post('{"slug":"a"}', { "content-type": "text/plain" });
    assert.equal(res.status, 415);
    assert.match((await res.json()).error.message, /application\/json/);
  });
  await t.step("body over the limit → 413, even without content-length", async () => {
    const big = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"slug":"' + "x".repeat(MAX_BODY_BYTES) + '"}'));
        c.close();
      },
    });
    const res = await post(big);
    assert.equal(res.status, 413);
    assert.equal((await res.json()).error.code, "payload_too_large");
  });
  await t.step("array instead of object → 400", async () => {
    const res = await post("[]");
    assert.equal(res.status, 400);
  });
});

Deno.test("createFunctionApp() answers unknown routes with a JSON 404", async () => {
  const res = await app().request("/demo/nope", { method: "GET", headers: { apikey: KEY } });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, "not_found");
});

Deno.test("readJson() refuses text the database cannot store with a 400 naming the field", async () => {
  const cases: Array<[string, string, string]> = [
    [`{"slug":"a\\u0000"}`, "slug", "nul"],
    [`{"slug":"\\ud800"}`, "slug", "lone_surrogate"],
    [`{"slug":"a","slug":"b"}`, "slug", "duplicate_key"],
    [`{"slug":1e400}`, "slug", "unsafe_number"],
    ["[".repeat(100_000) + "]".repeat(100_000), "[0][0][0]", "too_deep"],
  ];
  for (const [body, field, problem] of cases) {
    const res = await post(body);
    assert.equal(res.status, 400, body.slice(0, 40));
    const { error } = await res.json();
    assert.equal(error.code, "invalid_json");
    assert.equal(error.details[0].problem, problem);
    assert.ok(error.details[0].field.startsWith(field), `${error.details[0].field} names ${field}`);
    assert.ok(error.message.includes(field.slice(0, 4)), error.message);
  }
});

Deno.test("createFunctionApp() answers a URL that is not text with a 400 naming the part, before any key check", async () => {
  const a = createFunctionApp("demo");
  a.use("*", requireSecretKey({ default: KEY }));
  a.get("/:slug", (c) => c.json({ slug: c.req.param("slug"), q: c.req.query("q") }));
  const cases: Array<[string, string]> = [
    ["/demo/a?q=%00", "q"],
    ["/demo/a?q=%E0%A4%A", "q"],
    ["/demo/a?q=%ED%A0%80", "q"],
    ["/demo/a?%00=1", "query"],
    ["/demo/a%00b", "path"],
    ["/demo/%zz", "path"],
  ];
  for (const [url, field] of cases) {
    const res = await a.request(url);
    assert.equal(res.status, 400, url);
    const { error } = await res.json();
    assert.equal(error.code, "invalid_url", url);
    assert.equal(error.details[0].field, field, url);
  }
  const fine = await a.request("/demo/a?q=caf%C3%A9+x", { headers: { apikey: KEY } });
  assert.deepEqual(await fine.json(), { slug: "a", q: "café x" });
});
