// The functions as Supabase starts them: only `SUPABASE_SECRET_KEYS` (a JSON set of named keys), no singular key,
// no legacy key. Every function (served by the real functions router, a process of its own) accepts each key of the
// set, in `apikey` or as `Authorization: Bearer`, and answers 401 to anything else, the test stack's own keys
// included.
import assert from "node:assert/strict";
import { configEnv } from "../dev/stack.ts";
import { stack, startRouter } from "./_helpers.ts";

const KEYS = { default: "sb_secret_a", cron: "sb_secret_b" };

/** A request each function answers only once the key was accepted, and answers without running a job. */
function probe(name: string): { method: string; path: string; body?: string; ok: number } {
  if (name === "status-page") return { method: "GET", path: "?limit=1", ok: 200 };
  if (name === "metrics") return { method: "GET", path: "", ok: 200 };
  if (name === "whatsapp-ops") return { method: "POST", path: "/status", body: "{}", ok: 200 };
  // a scheduled job: an unknown field is refused with 400, after the key check and before anything runs
  return { method: "POST", path: "", body: '{"notAField":1}', ok: 400 };
}

Deno.test("every function started with only SUPABASE_SECRET_KEYS accepts each named key and 401s any other", async () => {
  const s = stack();
  const env = { ...configEnv(s), SUPABASE_SECRET_KEYS: JSON.stringify(KEYS) };
  assert.equal("SUPABASE_SECRET_KEY" in env || "SUPABASE_SERVICE_ROLE_KEY" in env, false, "no singular, no legacy key");
  const router = await startRouter(Number(new URL(s.functionsUrl).port) + 40, env);
  try {
    assert.deepEqual(router.health.bootErrors, {}, "every function boots with only SUPABASE_SECRET_KEYS");
    const keyed = router.health.functions.filter((f) => f !== "whatsapp-webhook"); // per-tenant tokens only
    assert.ok(keyed.length >= 7, `functions: ${router.health.functions.join(", ")}`);
    const refused: [string, Record<string, string>][] = [
      ["no key", {}],
      ["another sb_secret key", { apikey: "sb_secret_c" }],
      ["the test stack's own secret key (not in this set)", { apikey: s.secretKey }],
      ["a legacy-looking JWT", { apikey: "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.x" }],
      ["a key of the set with one character more", { apikey: `${KEYS.cron}x` }],
      ["the set itself as a key", { apikey: JSON.stringify(KEYS) }],
    ];
    for (const name of keyed) {
      const p = probe(name);
      const call = async (headers: Record<string, string>) => {
        const res = await fetch(`${router.functionsUrl}/${name}${p.path}`, {
          method: p.method,
          headers: { "content-type": "application/json", ...headers },
          body: p.body,
        });
        return { status: res.status, body: await res.text() };
      };
      for (const [keyName, key] of Object.entries(KEYS)) {
        for (const headers of [{ apikey: key }, { authorization: `Bearer ${key}` }] as Record<string, string>[]) {
          const r = await call(headers);
          assert.equal(r.status, p.ok, `${name} with the '${keyName}' key as ${Object.keys(headers)[0]}: ${r.body}`);
        }
      }
      for (const [what, headers] of refused) {
        const r = await call(headers);
        assert.equal(r.status, 401, `${name} with ${what}: ${r.body}`);
        assert.equal(JSON.parse(r.body).error.code, "unauthorized");
      }
    }
  } finally {
    const log = await router.stop();
    assert.doesNotMatch(log, /sb_secret_a|sb_secret_b/, "the keys never reach the function log");
  }
});
