// A receiver killed mid-batch loses nothing it answered and stores nothing twice: the whatsapp-webhook function in
// its own process (a functions router, like an isolate), many concurrent events, SIGKILL while batches are in
// flight, a new process, and every event not answered 200 delivered again (as Evolution retries).
import assert from "node:assert/strict";
import pMap from "p-map";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { createTenant, stack, startRouter, testSql, waitFor } from "./_helpers.ts";

const port = Number(new URL(stack().functionsUrl).port) + 47;

Deno.test("webhook group commit: SIGKILL mid-batch, redelivery of the unanswered → 0 lost, 0 duplicated", async () => {
  const sql = testSql();
  const slugs = await Promise.all(Array.from({ length: 8 }, async () => (await createTenant({ prefix: "wk" })).slug));
  const secret = stack().webhookSecret;
  const tokens = new Map(await Promise.all(slugs.map(async (s) => [s, await webhookToken(s, secret)] as const)));
  const run = crypto.randomUUID();
  const total = 3000;
  const base = Date.UTC(2031, 5, 1);
  const post = (url: string, i: number) => {
    const slug = slugs[i % slugs.length];
    return fetch(`${url}/whatsapp-webhook/api/whatsapp/webhook/${slug}`, {
      method: "POST",
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: tokens.get(slug)! },
      body: JSON.stringify({
        event: "connection.update",
        instance: `revalya-${slug}`,
        data: { state: ["open", "close", "connecting"][i % 3], run, seq: i },
        date_time: new Date(base + i).toISOString(),
      }),
    });
  };
  const stored = async () =>
    await sql<{ seq: number; n: number }[]>`
      select (data ->> 'seq')::int as seq, count(*)::int as n from public.api_logs
      where tenant_slug = any (${slugs}) and data ->> 'run' = ${run} group by 1`;

  let router = await startRouter(port);
  const answered = new Set<number>();
  let killed = false;
  const load = pMap(Array.from({ length: total }, (_, i) => i), async (i) => {
    if (killed) return;
    try {
      const res = await post(router.functionsUrl, i);
      const body = await res.json();
      if (res.status === 200) {
        assert.equal(body.ok, true);
        answered.add(i);
      }
    } catch {
      // the process is gone: no answer, Evolution will retry
    }
  }, { concurrency: 64 });
  await waitFor("800 answers", () => Promise.resolve(answered.size >= 800 || null));
  // mid-batch for sure: the tenants' activity rows locked, so the next batch stops inside its statement (its
  // receipts and api_logs rows written, not committed); the process is killed there, then the lock released
  const lock = await sql.reserve();
  await lock`begin`;
  await lock`select 1 from maintenance.webhook_activity where tenant_slug = any (${slugs}) for update`;
  await waitFor("a batch waiting inside its statement", async () => {
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where wait_event_type = 'Lock' and query like '%maintenance.record_webhook_event%'`;
    return n > 0 ? true : null;
  });
  killed = true;
  const answeredAtKill = answered.size;
  await router.stop("SIGKILL");
  await lock`rollback`;
  lock.release();
  await load;
  assert.ok(answered.size < total);
  assert.equal(answered.size, answeredAtKill, "nothing answered after the kill");

  // a statement the dead process left running still commits: wait for it, so `before` is final
  await waitFor("the dead receiver's statements to end", async () => {
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where state = 'active' and query like '%maintenance.record_webhook_event%' and pid <> pg_backend_pid()`;
    return n === 0 ? true : null;
  }, 10_000);
  // every event answered 200 before the kill is stored, exactly once
  const before = new Map((await stored()).map((r) => [r.seq, r.n]));
  const lostAnswered = [...answered].filter((i) => before.get(i) !== 1);
  assert.deepEqual(lostAnswered, [], "answered 200 but not stored once");

  // a new process; every event without a 200 delivered again
  router = await startRouter(port);
  try {
    const again = Array.from({ length: total }, (_, i) => i).filter((i) => !answered.has(i));
    let duplicates = 0;
    await pMap(again, async (i) => {
      const res = await post(router.functionsUrl, i);
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      if (body.duplicate) duplicates++;
    }, { concurrency: 16 });
    const after = await stored();
    assert.equal(after.length, total, "every event stored");
    assert.deepEqual(after.filter((r) => r.n !== 1), [], "no event stored twice");
    // the events stored before the kill but never answered came back as duplicates, and only those
    assert.equal(duplicates, before.size - answered.size);
    assert.ok(duplicates > 0, "the batch the process died in committed without answering");
  } finally {
    await router.stop();
  }
});
