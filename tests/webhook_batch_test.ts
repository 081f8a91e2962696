// Group commit of webhook events on the real local Postgres: maintenance.record_webhook_events gives the same
// answers and leaves the same rows as maintenance.record_webhook_event called once per event in order (duplicates
// inside a batch included), and the receiver's recorder batches concurrent events, writes a lone one alone, and
// isolates a bad event of a failing batch.
import assert from "node:assert/strict";
import { createRecorder, type WebhookEvent, writeMany, writeSingle } from "../shared/webhook/batch.ts";
import { createWebhookApp } from "../shared/webhook/app.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { createTenant, testDeps, testSql, uniqueSlug } from "./_helpers.ts";

const sql = testSql();

/**
 * A mixed sequence over three tenants: connection.update states with source times out of order and tied, a null
 * date_time, a null payload, a payload without state, events that are not stored, and redeliveries (of earlier
 * events and of events earlier in the same sequence).
 */
function sequence(slugs: string[]): WebhookEvent[] {
  const t = (m: number) => new Date(Date.UTC(2031, 0, 1, 10, m));
  const ev = (i: number, event: string, at: Date | null, payload: unknown, store = true): WebhookEvent => ({
    slug: slugs[i],
    instance: `inst-${slugs[i]}`,
    event,
    at,
    payload,
    store,
    bytes: 100,
  });
  const open = (i: number, m: number | null, extra = {}) =>
    ev(i, "connection.update", m === null ? null : t(m), { state: "open", ...extra });
  const close = (i: number, m: number) => ev(i, "connection.update", t(m), { state: "close", statusReason: 428 });
  const list: WebhookEvent[] = [
    open(0, 5),
    close(0, 3), // older than the stored state: logged, state kept
    close(0, 5), // a tie: the later one wins
    ev(0, "qrcode.updated", t(6), null, false),
    open(1, null), // no date_time: its receipt time orders it
    ev(1, "connection.update", t(2), null), // null payload: no state
    ev(1, "connection.update", t(2), { statusReason: 200 }), // no state in it
    ev(2, "logout.instance", t(1), { reason: "x" }),
    ev(2, "remove.instance", t(1), null),
    open(2, 9, { wuid: "1" }),
  ];
  // redeliveries: an exact repeat of several of the above, and a repeat right after the original
  return [
    ...list,
    list[0],
    list[2],
    list[7],
    list[9],
    close(2, 8),
    close(2, 8),
    ev(0, "qrcode.updated", t(6), null, false),
  ];
}

async function effects(slugs: string[]) {
  const rows = [];
  for (const slug of slugs) {
    const logs = await sql<{ event: string; status: string; data: unknown }[]>`
      select event, status, data from public.api_logs where tenant_slug = ${slug} order by id`;
    const [activity] = await sql<Record<string, unknown>[]>`
      select last_event, last_state, events_total::int as events_total,
        case when last_state_source_at > now() + interval '1 day' then last_state_source_at::text
          when last_state_source_at is not null then 'receipt time' end as source_at, last_state_at is not null as has_state_at,
        last_event_at is not null as has_event_at, first_event_at is not null as has_first
      from maintenance.webhook_activity where tenant_slug = ${slug}`;
    const [receipts] = await sql<{ n: number }[]>`
      select count(*)::int as n from maintenance.webhook_receipts where tenant_slug = ${slug}`;
    rows.push({ logs, activity: activity ?? null, receipts: receipts.n });
  }
  return rows;
}

const threeSlugs = () => [0, 1, 2].map(() => uniqueSlug("wb"));

Deno.test("record_webhook_events: the same answers and rows as record_webhook_event once per event", async (t) => {
  for (const split of [[0], [0, 4], [0, 3, 10, 12]]) {
    await t.step(`batches starting at ${split.join(", ")}`, async () => {
      const one = threeSlugs();
      const many = threeSlugs();
      const a = sequence(one);
      const b = sequence(many);
      const single: boolean[] = [];
      for (const e of a) single.push(await writeSingle(sql, e));
      const batched: boolean[] = [];
      for (let s = 0; s < split.length; s++) {
        batched.push(...await writeMany(sql, b.slice(split[s], split[s + 1] ?? b.length)));
      }
      assert.deepEqual(batched, single);
      // the expected answers, spelled out: the redeliveries (and the in-sequence repeat) are duplicates
      assert.deepEqual(single, [
        ...Array(10).fill(true),
        false,
        false,
        false,
        false,
        true,
        false,
        true, // not stored: never a duplicate
      ]);
      assert.deepEqual(await effects(many), await effects(one));
      const [zero] = await effects([one[0]]);
      assert.equal(zero.activity?.last_state, "close");
      assert.equal(zero.activity?.events_total, 5);
      assert.equal(zero.logs.length, 3);
    });
  }
  await t.step("a whole batch delivered again changes nothing", async () => {
    const slugs = threeSlugs();
    const events = sequence(slugs);
    await writeMany(sql, events);
    const before = await effects(slugs);
    const again = await writeMany(sql, events.filter((e) => e.store));
    assert.ok(again.every((isNew) => !isNew), JSON.stringify(again));
    const after = await effects(slugs);
    assert.deepEqual(after.map((r) => [r.logs, r.receipts]), before.map((r) => [r.logs, r.receipts]));
  });
  await t.step("a key stored by the single-event function is a duplicate in a batch, and the other way", async () => {
    const [slug] = threeSlugs();
    const e = (m: number): WebhookEvent => ({
      slug,
      instance: `inst-${slug}`,
      event: "connection.update",
      at: new Date(Date.UTC(2031, 1, 1, 0, m, 0, 123)),
      payload: { state: "open", n: 1.5, s: "ação" },
      store: true,
      bytes: 10,
    });
    assert.equal(await writeSingle(sql, e(1)), true);
    assert.deepEqual(await writeMany(sql, [e(1), e(2)]), [false, true]);
    assert.equal(await writeSingle(sql, e(2)), false);
  });
  await t.step("not an array → an error, nothing written", async () => {
    await assert.rejects(sql`select * from maintenance.record_webhook_events('{"a": 1}'::jsonb)`);
    assert.equal((await sql`select * from maintenance.record_webhook_events('[]'::jsonb)`).length, 0);
  });
});

Deno.test("the recorder: concurrent events in few statements, a lone one alone, a bad one isolated", async (t) => {
  const event = (slug: string, i: number, at: Date | null = new Date(Date.UTC(2031, 2, 1, 0, 0, i))): WebhookEvent => ({
    slug,
    instance: `inst-${slug}`,
    event: "connection.update",
    at,
    payload: { state: "open", i },
    store: true,
    bytes: 50,
  });
  const count = async (slug: string) =>
    (await sql<{ n: number }[]>`select count(*)::int as n from public.api_logs where tenant_slug = ${slug}`)[0].n;

  await t.step("a lone event: one single-event statement", async () => {
    const recorder = createRecorder(sql);
    const slug = uniqueSlug("wb");
    assert.equal(await recorder.record(event(slug, 1)), true);
    assert.deepEqual(recorder.stats, { statements: 1, batched: 0, fallbacks: 0, largest: 1 });
  });
  await t.step("200 concurrent events: far fewer statements, each event once", async () => {
    const recorder = createRecorder(sql, { maxEvents: 64 });
    const slug = uniqueSlug("wb");
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => recorder.record(event(slug, i))));
    assert.ok(results.every(Boolean));
    assert.equal(await count(slug), 200);
    assert.ok(recorder.stats.statements <= 10, JSON.stringify(recorder.stats));
    assert.equal(recorder.stats.largest, 64);
    // a byte cap splits as well
    const small = createRecorder(sql, { maxBytes: 120 });
    const other = uniqueSlug("wb");
    await Promise.all(Array.from({ length: 6 }, (_, i) => small.record(event(other, i))));
    assert.equal(small.stats.largest, 2);
    assert.equal(await count(other), 6);
  });
  await t.step("batching off: one statement per event", async () => {
    const recorder = createRecorder(sql, { batching: false });
    const slug = uniqueSlug("wb");
    await Promise.all(Array.from({ length: 20 }, (_, i) => recorder.record(event(slug, i))));
    assert.equal(recorder.stats.statements, 20);
    assert.equal(recorder.stats.batched, 0);
  });
  await t.step("a batch with an event Postgres refuses: that one fails alone, the others are stored", async () => {
    const recorder = createRecorder(sql);
    const slug = uniqueSlug("wb");
    const events = Array.from({ length: 10 }, (_, i) => event(slug, i));
    events[4] = event(slug, 4, new Date("-000001-01-01T00:00:00Z"));
    const settled = await Promise.allSettled(events.map((e) => recorder.record(e)));
    assert.deepEqual(settled.map((s) => s.status), events.map((_, i) => i === 4 ? "rejected" : "fulfilled"));
    assert.equal(recorder.stats.fallbacks, 1);
    assert.equal(await count(slug), 9);
  });
});

Deno.test("the receiver: concurrent requests batched with per-request answers; a date_time Postgres cannot store is a 400", async () => {
  const deps = testDeps();
  const app = createWebhookApp(deps);
  const { slug } = await createTenant({ prefix: "wb" });
  const token = await webhookToken(slug, deps.config.webhookSecret);
  const post = async (body: unknown) => {
    const res = await app.request(`/whatsapp-webhook/api/whatsapp/webhook/${slug}`, {
      method: "POST",
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: token },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const env = (i: number, dateTime = new Date(Date.UTC(2031, 3, 1, 0, 0, i)).toISOString()) => ({
    event: "connection.update",
    instance: `revalya-${slug}`,
    data: { state: "open", i },
    date_time: dateTime,
  });
  const bodies = [...Array.from({ length: 30 }, (_, i) => env(i)), env(3), env(7)];
  const answers = await Promise.all(bodies.map(post));
  assert.ok(answers.every((a) => a.status === 200), JSON.stringify(answers.find((a) => a.status !== 200)));
  assert.equal(answers.filter((a) => a.json.duplicate).length, 2);
  const [{ n }] = await sql<
    { n: number }[]
  >`select count(*)::int as n from public.api_logs where tenant_slug = ${slug}`;
  assert.equal(n, 30);
  for (const bad of ["-000001-01-01T00:00:00Z", "+275760-09-13T00:00:00.000Z", "0000-06-01T00:00:00Z"]) {
    const r = await post(env(99, bad));
    assert.equal(r.status, 400, bad);
    assert.match(r.json.error.message, /'date_time'/);
  }
  assert.equal(
    (await sql<{ n: number }[]>`select count(*)::int as n from public.api_logs where tenant_slug = ${slug}`)[0].n,
    30,
  );
});
