// The whatsapp-webhook app in process (app.request) on the real local Postgres: the guard order, the envelope,
// cross-tenant rejection, dedup of redeliveries and the tenant's webhook activity.
import assert from "node:assert/strict";
import { createWebhookApp } from "../shared/webhook/app.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { createTenant, testDeps, testSql } from "./_helpers.ts";

const deps = testDeps();
const app = createWebhookApp(deps);
const secret = deps.config.webhookSecret;

function envelope(instance: string, event: string, data: unknown, dateTime = new Date().toISOString()) {
  return {
    event,
    instance,
    data,
    destination: "http://x",
    date_time: dateTime,
    server_url: "http://evo",
    apikey: null,
  };
}

async function post(slug: string, body: unknown, opts: { token?: string | null; suffix?: string; type?: string } = {}) {
  const headers: Record<string, string> = { "content-type": opts.type ?? "application/json" };
  const token = opts.token === undefined ? await webhookToken(slug, secret).catch(() => "") : opts.token;
  if (token) headers[WEBHOOK_TOKEN_HEADER] = token;
  const res = await app.request(
    `/whatsapp-webhook/api/whatsapp/webhook/${slug}${opts.suffix ? `/${opts.suffix}` : ""}`,
    { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) },
  );
  return { status: res.status, json: await res.json() };
}

async function logs(slug: string) {
  return await testSql()<{ event: string; status: string; error_type: string | null; data: Record<string, unknown> }[]>`
    select event, status, error_type, data from public.api_logs
    where tenant_slug = ${slug} and service = 'whatsapp' order by id`;
}

Deno.test("whatsapp-webhook rejects bad slugs (400), and unknown tenants exactly as bad tokens (401)", async (t) => {
  const { slug } = await createTenant({ prefix: "wh" });
  const body = envelope(`revalya-${slug}`, "connection.update", { state: "open" });
  await t.step("invalid slugs → 400 naming 'slug'", async () => {
    for (const bad of ["..%2Fx", "a%2Fb", "ACME", "%D0%B0cme", "x".repeat(10_000)]) {
      const r = await post(bad, body, { token: "x" });
      assert.equal(r.status, 400, bad.slice(0, 20));
      assert.match(r.json.error.message, /'slug'/);
    }
  });
  await t.step("unknown tenant → the same 401 and body as a wrong token", async () => {
    const unknown = await post("no-such-tenant-xyz", body);
    const wrong = await post(slug, body, { token: "0".repeat(64) });
    assert.equal(unknown.status, 401);
    assert.deepEqual(unknown.json, wrong.json);
    assert.doesNotMatch(JSON.stringify(unknown.json), /no-such-tenant|tenant with/);
  });
  await t.step("missing or wrong token → 401; another tenant's token → 401", async () => {
    assert.equal((await post(slug, body, { token: null })).status, 401);
    assert.equal((await post(slug, body, { token: "0".repeat(64) })).status, 401);
    assert.equal((await post(slug, body, { token: await webhookToken("other", secret) })).status, 401);
  });
  assert.equal((await logs(slug)).length, 0, "nothing is stored for a rejected request");
});

Deno.test("whatsapp-webhook answers malformed bodies with 4xx naming the problem", async () => {
  const { slug } = await createTenant({ prefix: "wh" });
  const bad = await post(slug, "{not json");
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, "invalid_json");
  const missing = await post(slug, { event: "connection.update", data: {} });
  assert.equal(missing.status, 400);
  assert.match(missing.json.error.message, /'instance'/);
  assert.equal((await post(slug, "x".repeat(1024 * 1024 + 1))).status, 413);
  assert.equal((await post(slug, "{}", { type: "text/plain" })).status, 415);
  const suffix = await post(slug, envelope(`revalya-${slug}`, "connection.update", {}), { suffix: "qrcode-updated" });
  assert.equal(suffix.status, 400);
  assert.match(suffix.json.error.message, /'suffix'/);
});

Deno.test("whatsapp-webhook rejects an event for another tenant's instance with 403 and logs it", async () => {
  const a = await createTenant({ prefix: "wha" });
  const b = await createTenant({ prefix: "whb" });
  const r = await post(a.slug, envelope(`revalya-${b.slug}`, "connection.update", { state: "open" }));
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, "forbidden");
  const rows = await logs(a.slug);
  assert.equal(rows.length, 1);
  // stored under its own event name, so no reader of the tenant's connection.update rows takes it for a state
  assert.deepEqual(
    [rows[0].event, rows[0].status, rows[0].error_type],
    ["cross_tenant_attempt", "error", "cross_tenant"],
  );
  assert.equal(rows[0].data.event, "connection.update", "the claimed event is kept in data.event");
  assert.equal(rows[0].data.claimedInstance, `revalya-${b.slug}`);
  assert.equal((await logs(b.slug)).length, 0, "the claimed tenant gets no event");
});

Deno.test("whatsapp-webhook stores connection.update once, however often Evolution redelivers it", async () => {
  const { slug } = await createTenant({ prefix: "wh" });
  const instance = `revalya-${slug}`;
  const ev = envelope(instance, "connection.update", { instance, state: "close", statusReason: 401 });
  const first = await post(slug, ev);
  assert.deepEqual([first.status, first.json.duplicate, first.json.stored], [200, false, true]);
  const again = await Promise.all([post(slug, ev), post(slug, ev), post(slug, ev, { suffix: "connection-update" })]);
  assert.deepEqual(again.map((r) => [r.status, r.json.duplicate]), [[200, true], [200, true], [200, true]]);
  const rows = await logs(slug);
  assert.equal(rows.length, 1);
  assert.deepEqual([rows[0].event, rows[0].status, rows[0].data.state, rows[0].data.statusReason], [
    "connection.update",
    "success",
    "close",
    401,
  ]);
  // The same state at another time is another event.
  await post(
    slug,
    envelope(
      instance,
      "connection.update",
      { instance, state: "close", statusReason: 401 },
      "2030-01-01T00:00:00.000Z",
    ),
  );
  assert.equal((await logs(slug)).length, 2);
  const [seed] = await testSql()<{ state: string; reason: string }[]>`
    select data->>'state' as state, data->>'statusReason' as reason from public.api_logs
    where tenant_slug = ${slug} order by id limit 1`;
  assert.deepEqual(seed, { state: "close", reason: "401" }, "readable as the seed reads it (data->>'state')");
});

Deno.test("whatsapp-webhook keeps the tenant's webhook activity; a late event never overwrites a newer state", async () => {
  const { slug } = await createTenant({ prefix: "wh" });
  const instance = `revalya-${slug}`;
  await post(slug, envelope(instance, "connection.update", { state: "open" }, "2030-01-01T10:00:00.000Z"));
  await post(slug, envelope(instance, "connection.update", { state: "connecting" }, "2030-01-01T09:00:00.000Z"));
  const qr = await post(slug, envelope(instance, "qrcode.updated", { qrcode: { base64: "data:..." } }));
  assert.deepEqual([qr.status, qr.json.stored], [200, false]);
  const [a] = await testSql()<{ last_event: string; last_state: string; events_total: string; age: number }[]>`
    select last_event, last_state, events_total::text, extract(epoch from now() - last_event_at) as age
    from maintenance.webhook_activity where tenant_slug = ${slug}`;
  assert.deepEqual([a.last_event, a.last_state, a.events_total], ["qrcode.updated", "open", "3"]);
  assert.ok(a.age < 60);
  assert.deepEqual((await logs(slug)).map((r) => r.event), ["connection.update", "connection.update"]);
});

Deno.test("whatsapp-webhook logs lifecycle events with their data, and only refreshes activity for the rest", async () => {
  const { slug } = await createTenant({ prefix: "wh" });
  const instance = `revalya-${slug}`;
  for (
    const [event, data] of [
      ["status.instance", { instance, status: "closed", disconnectionReasonCode: 401 }],
      ["logout.instance", null],
      ["remove.instance", null],
      ["messages.upsert", { key: { id: "1" } }],
    ] as const
  ) {
    assert.equal((await post(slug, envelope(instance, event, data))).status, 200);
  }
  const rows = await logs(slug);
  assert.deepEqual(rows.map((r) => [r.event, r.status]), [
    ["status.instance", "success"],
    ["logout.instance", "success"],
    ["remove.instance", "success"],
  ]);
  assert.equal(rows[0].data.disconnectionReasonCode, 401);
});
