// Property-based hostile input (fast-check) over every route of the test stack: bodies holding text the database
// cannot store (NUL, lone surrogates), duplicate keys, integers past 2^53, nesting 65 to 100,000 deep, bytes that
// are not UTF-8, and query strings of random bytes. Every generated case carries at least one such poison, so each
// must be refused with a 4xx naming where it is (never a 5xx) and change no row; a webhook event claiming another
// instance is still a cross-tenant attempt on record, sanitised. The seed is fixed (replayable);
// RELIABILITY_SEED overrides it.
import assert from "node:assert/strict";
import fc from "fast-check";
import { createTenant, testSql } from "../_helpers.ts";
import { stack } from "../_helpers.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../../shared/naming.ts";
import { JOBS } from "../../shared/jobs/mod.ts";
import { raw, rowCounts } from "./_matrix.ts";

const SEED = Number(Deno.env.get("RELIABILITY_SEED") ?? 20261202);
/** Cases per route; 15 targets × 140 ≥ 2,000 in all. */
const RUNS = 140;
let total = 0;

/** A string holding at least one character Postgres or a reader cannot take, anywhere in it. */
const poisonString = fc.tuple(
  fc.string({ maxLength: 20 }),
  fc.constantFrom("\u0000", "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"),
  fc.string({ maxLength: 20 }),
).map(([a, p, b]) => a + p + b);

type Poison =
  | { kind: "string"; text: string }
  | { kind: "key"; text: string }
  | { kind: "duplicate" }
  | { kind: "number"; literal: string }
  | { kind: "deep"; depth: number };

const poison: fc.Arbitrary<Poison> = fc.oneof(
  poisonString.map((text): Poison => ({ kind: "string", text })),
  poisonString.map((text): Poison => ({ kind: "key", text })),
  fc.constant<Poison>({ kind: "duplicate" }),
  fc.oneof(
    fc.bigInt({ min: 2n ** 53n, max: 10n ** 30n }).map((n) => n.toString()),
    fc.bigInt({ min: -(10n ** 30n), max: -(2n ** 53n) }).map((n) => n.toString()),
    fc.constantFrom("1e400", "-1e309", "123456789012345678901234567890"),
  ).map((literal): Poison => ({ kind: "number", literal })),
  fc.constantFrom(65, 200, 5_000, 100_000).map((depth): Poison => ({ kind: "deep", depth })),
);

/** The JSON text of `base` (an object) with the poison put under `field` (a path of object keys). */
function poisoned(base: Record<string, unknown>, field: string[], p: Poison): string {
  const marker = "\u2063POISON\u2063";
  const copy = structuredClone(base) as Record<string, unknown>;
  let at = copy;
  for (const k of field.slice(0, -1)) {
    if (!at[k] || typeof at[k] !== "object" || Array.isArray(at[k])) at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  const last = field[field.length - 1];
  at[last] = marker;
  const text = JSON.stringify(copy);
  const quoted = JSON.stringify(marker);
  switch (p.kind) {
    case "string":
      return text.replace(quoted, JSON.stringify(p.text));
    case "key":
      return text.replace(quoted, `{${JSON.stringify(p.text)}: 1}`);
    case "duplicate":
      return text.replace(quoted, `"a", ${JSON.stringify(last)}: "b"`);
    case "number":
      return text.replace(quoted, p.literal);
    case "deep":
      return text.replace(quoted, "[".repeat(p.depth) + "]".repeat(p.depth));
  }
}

/** A body as bytes that are not UTF-8 (an invalid sequence somewhere inside valid JSON text). */
const notUtf8 = fc.tuple(
  fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80]),
  fc.nat({ max: 5 }),
).map(([bad, at]) => {
  const before = new TextEncoder().encode(`{"slug":"`);
  const after = new TextEncoder().encode(`${"x".repeat(at)}"}`);
  return new Uint8Array([...before, ...bad, ...after]);
});

interface Target {
  name: string;
  fn: string;
  path?: string;
  base: Record<string, unknown>;
  /** Fields a poison may go into (paths of object keys; the rest of the body stays valid). */
  fields: string[][];
  headers?: Record<string, string>;
}

async function checkTarget(target: Target, slugs: string[]) {
  const before = await rowCounts(slugs);
  const body = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.tuple(fc.constantFrom(...target.fields), poison).map(([f, p]) => poisoned(target.base, f, p)),
    },
    { weight: 1, arbitrary: notUtf8 },
  );
  await fc.assert(
    fc.asyncProperty(body, async (b) => {
      total++;
      const r = await raw(target.fn, {
        path: target.path,
        body: b,
        headers: { "content-type": "application/json", ...target.headers },
      });
      assert.ok(r.status >= 400 && r.status < 500, `${target.name}: ${r.status} ${r.text.slice(0, 300)}`);
      assert.equal(r.json.error?.code, "invalid_json", `${target.name}: ${r.text.slice(0, 300)}`);
      assert.ok(r.json.error?.message, "the answer says what was wrong");
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  assert.deepEqual(await rowCounts(slugs), before, `${target.name}: no row changed`);
}

Deno.test("every job refuses hostile bodies with a 400 naming the problem and changes no row", async (t) => {
  for (const def of JOBS) {
    const base = def.sampleInput as Record<string, unknown>;
    const fields = [["tenants"], ["trigger"], ["x"], ...Object.keys(base).map((k) => [k])];
    await t.step(def.name, () => checkTarget({ name: def.name, fn: def.name, base, fields }, []));
  }
});

Deno.test("whatsapp-ops refuses hostile bodies on every route, naming the problem, and changes no row", async (t) => {
  const { slug } = await createTenant({ prefix: "hi-ops" });
  try {
    const routes: Record<string, Record<string, unknown>> = {
      diagnose: { slug },
      fix: { slug, apply: false },
      reconnect: { slug },
      reset: { slug, confirm: slug },
      migrate: { slug, apiUrl: "http://127.0.0.1:9/", apiKey: "k" },
      status: { slug },
    };
    for (const [route, base] of Object.entries(routes)) {
      const fields = [...Object.keys(base).map((k) => [k]), ["nested", "deeper"]];
      await t.step(
        `/${route}`,
        () => checkTarget({ name: `/${route}`, fn: "whatsapp-ops", path: `/${route}`, base, fields }, [slug]),
      );
    }
  } finally {
    await testSql()`delete from public.tenants where slug = ${slug}`;
  }
});

Deno.test("whatsapp-webhook refuses hostile envelopes and data (400); a hostile claim of another instance is a cross-tenant attempt on record", async (t) => {
  const { slug } = await createTenant({ prefix: "hi-wh" });
  const { slug: other } = await createTenant({ prefix: "hi-wh" });
  const headers = { [WEBHOOK_TOKEN_HEADER]: await webhookToken(slug, stack().webhookSecret) };
  const path = `/api/whatsapp/webhook/${slug}`;
  try {
    const own = {
      event: "connection.update",
      instance: `revalya-${slug}`,
      data: { state: "open", statusReason: 200, message: { text: "hi", context: { quoted: "x" } } },
      date_time: "2026-01-01T10:00:00.000Z",
    };
    await t.step("its own instance, hostile data or envelope", () =>
      checkTarget({
        name: "webhook own instance",
        fn: "whatsapp-webhook",
        path,
        headers,
        base: own,
        fields: [["data", "state"], ["data", "message", "text"], ["data", "message", "context", "quoted"], ["event"], [
          "date_time",
        ], ["data", "x"]],
      }, [slug, other]));

    await t.step("another instance, the claim itself hostile: 403, logged once, sanitised", async () => {
      const before = await rowCounts([slug, other]);
      let attempts = 0;
      await fc.assert(
        fc.asyncProperty(poisonString, fc.boolean(), async (suffix, inData) => {
          total++;
          attempts++;
          const claimed = `revalya-${other}${suffix}`;
          const env = { ...own, instance: claimed, data: inData ? { state: "open\u0000" } : own.data };
          const r = await raw("whatsapp-webhook", {
            path,
            headers: { "content-type": "application/json", ...headers },
            body: JSON.stringify(env),
          });
          assert.equal(r.status, 403, r.text.slice(0, 300));
          assert.doesNotMatch(r.text, /\\u0000|\\ud[89ab]/i, "the answer carries no raw poison");
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      const after = await rowCounts([slug, other]);
      assert.equal(after.api_logs - before.api_logs, attempts, "each attempt is one row on record");
      const [bad] = await testSql()<{ n: number }[]>`
        select count(*)::int as n from public.api_logs
        where tenant_slug = ${slug} and (data::text like '%\\u0000%' or data::text ~ '\\\\ud[89ab]')`;
      assert.equal(bad.n, 0, "stored sanitised");
    });
  } finally {
    await testSql()`delete from public.api_logs where tenant_slug in (${slug}, ${other})`;
    await testSql()`delete from public.tenants where slug in (${slug}, ${other})`;
  }
});

Deno.test("status-page answers any query string of random bytes with a 200 or a 400 naming the parameter, never a 5xx", async () => {
  const bytes = fc.uint8Array({ maxLength: 24 }).map((b) =>
    [...b].map((x) => `%${x.toString(16).padStart(2, "0")}`).join("")
  );
  const before = await rowCounts([]);
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("q", "limit", "format", "token", "%00", "q%ED%A0%80"),
      bytes,
      fc.boolean(),
      async (key, value, poisonIt) => {
        total++;
        const v = poisonIt ? `${value}%00` : value;
        const r = await raw("status-page", { method: "GET", path: `?${key}=${v}&format=json` });
        assert.ok(r.status < 500, `?${key}=${v}: ${r.status} ${r.text.slice(0, 200)}`);
        if (poisonIt || key.includes("%")) {
          assert.equal(r.status, 400, `?${key}=${v}: ${r.text.slice(0, 200)}`);
          assert.ok(["invalid_url", "invalid_request"].includes(r.json.error?.code ?? ""), r.text.slice(0, 200));
        }
      },
    ),
    { seed: SEED, numRuns: RUNS * 2, endOnFailure: true },
  );
  assert.deepEqual(await rowCounts([]), before);
});

Deno.test("the hostile-input properties ran at least 2,000 cases", () => {
  console.log(`[hostile input] ${total} cases, seed ${SEED} (replay with RELIABILITY_SEED=${SEED})`);
  assert.ok(total >= 2_000, `only ${total} cases ran`);
});
