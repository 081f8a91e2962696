// End to end on the test stack: a tenant's instance created through the client against the stack's simulator, a
// simulated scan through the simulator's HTTP control API, and the connection.update events arriving through the
// real whatsapp-webhook function (functions router) into api_logs; a forged event and a redelivery.
import assert from "node:assert/strict";
import { EvolutionClient } from "../shared/evolution/client.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { createTenant, stack, testConfig, testSql } from "./_helpers.ts";

async function control(method: string, args: unknown[]) {
  const res = await fetch(`${stack().evolutionUrl}/_control/${method}`, { method: "POST", body: JSON.stringify(args) });
  assert.equal(res.status, 200, await res.clone().text());
  return await res.json();
}

async function waitFor<T>(what: string, fn: () => Promise<T | null>, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function postEvent(slug: string, token: string, body: unknown) {
  return fetch(`${stack().webhookBaseUrl}/api/whatsapp/webhook/${slug}`, {
    method: "POST",
    headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: token },
    body: JSON.stringify(body),
  });
}

Deno.test("create + scan: connection.update events reach api_logs through the real whatsapp-webhook function", async () => {
  const { slug } = await createTenant({ prefix: "e2e" });
  const evo = new EvolutionClient(testConfig(), { sql: testSql() });
  const created = await evo.createInstance(slug);
  assert.equal(created.name, `revalya-${slug}`);
  await control("scan", [created.name]);
  const sql = testSql();
  const states = await waitFor("connecting and open in api_logs", async () => {
    const rows = await sql<{ state: string }[]>`
      select data->>'state' as state from public.api_logs
      where tenant_slug = ${slug} and service = 'whatsapp' and event = 'connection.update' and status = 'success'
      order by id`;
    const s = rows.map((r) => r.state);
    return s.includes("open") && s.includes("connecting") ? s : null;
  });
  assert.equal(states.at(-1), "open");
  // instance.create arrived too, and the tenant's activity shows it open.
  const [activity] = await sql<{ last_state: string }[]>`
    select last_state from maintenance.webhook_activity where tenant_slug = ${slug}`;
  assert.equal(activity.last_state, "open");
  const deliveries = await (await fetch(`${stack().evolutionUrl}/_control/deliveries`)).json() as {
    instance: string;
    status: number;
  }[];
  const mine = deliveries.filter((d) => d.instance === created.name);
  assert.ok(mine.length >= 4 && mine.every((d) => d.status === 200), JSON.stringify(mine));
  // The client's own calls were logged against the tenant.
  await evo.flushLogs();
  const [{ n }] = await sql`select count(*)::int as n from public.api_logs
    where tenant_slug = ${slug} and event = 'create_instance' and status = 'success'`;
  assert.equal(n, 1);
  await evo.deleteInstance(created.name);
  await evo.flushLogs();
});

Deno.test("a forged event for another tenant is rejected (403) and logged; a redelivery is stored once", async () => {
  const a = await createTenant({ prefix: "e2ea" });
  const b = await createTenant({ prefix: "e2eb" });
  const secret = stack().webhookSecret;
  const forged = {
    event: "connection.update",
    instance: `revalya-${b.slug}`,
    data: { instance: `revalya-${b.slug}`, state: "close", statusReason: 401 },
    date_time: new Date().toISOString(),
    apikey: null,
  };
  const res = await postEvent(a.slug, await webhookToken(a.slug, secret), forged);
  assert.equal(res.status, 403);
  await res.body?.cancel();
  const sql = testSql();
  const rows = await sql<{ error_type: string; claimed: string }[]>`
    select error_type, data->>'claimedInstance' as claimed from public.api_logs
    where tenant_slug = ${a.slug} and status = 'error'`;
  assert.deepEqual([...rows], [{ error_type: "cross_tenant", claimed: `revalya-${b.slug}` }]);

  const genuine = { ...forged, instance: `revalya-${a.slug}`, data: { instance: `revalya-${a.slug}`, state: "open" } };
  const token = await webhookToken(a.slug, secret);
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    const r = await postEvent(a.slug, token, genuine);
    statuses.push(r.status);
    await r.body?.cancel();
  }
  assert.deepEqual(statuses, [200, 200, 200]);
  const [{ n }] = await sql`select count(*)::int as n from public.api_logs
    where tenant_slug = ${a.slug} and event = 'connection.update' and status = 'success'`;
  assert.equal(n, 1);
});
