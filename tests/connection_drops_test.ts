// maintenance.connection_drops is the textbook rule at any volume: on a pseudo-random fixture (tenants with
// hundreds of connection.update rows in every state, rows without a state, error rows, cross-tenant attempts,
// other events and services) every figure of every tenant, over several windows, equals a plain walk over the
// tenant's rows in TypeScript. And the migration that introduced it runs again on a database that has its objects,
// moving cross-tenant attempts stored the old way (under the event they claimed) to their own event name.
import assert from "node:assert/strict";
import { testSql } from "./_helpers.ts";

const FROM = Date.parse("2007-03-01T00:00:00Z");
const TO = Date.parse("2007-03-11T00:00:00Z");
const SLUGS = Array.from({ length: 12 }, (_, i) => `cd-rand-${i}`);

interface Row {
  id: number;
  tenant_slug: string;
  service: string;
  event: string;
  status: string | null;
  created_at: Date;
  data: Record<string, unknown> | null;
}

/** A small deterministic generator (mulberry32), so a failure reproduces. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function fill(n: number, seed: number) {
  const sql = testSql();
  await sql`delete from public.api_logs where created_at >= ${new Date(FROM)} and created_at < ${new Date(TO)}`;
  const r = random(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const rows = Array.from({ length: n }, () => {
    const kind = r();
    const state = pick(["open", "open", "connecting", "connecting", "close", "refused"]);
    // some rows share a timestamp (whole seconds), so the order falls back on the id
    const at = new Date(FROM + Math.floor(r() * (TO - FROM) / 1000) * 1000);
    const reason = pick([200, 200, 401, 428, null]);
    const data = kind < 0.03
      ? null
      : kind < 0.06
      ? { statusReason: 200 }
      : kind < 0.08
      ? { data: { state, statusReason: reason } } // a whole envelope stored as data
      : { state, ...(reason === null ? {} : { statusReason: reason }) };
    return {
      tenant_slug: pick(SLUGS),
      service: kind > 0.97 ? "billing" : "whatsapp",
      event: kind > 0.9 && kind <= 0.93
        ? "cross_tenant_attempt"
        : kind > 0.93 && kind <= 0.97
        ? "connect"
        : "connection.update",
      status: kind > 0.85 && kind <= 0.9 ? "error" : kind > 0.8 && kind <= 0.85 ? null : "success",
      created_at: at,
      data,
    };
  }).sort((x, y) => x.created_at.getTime() - y.created_at.getTime());
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000).map((x) => ({ ...x, data: x.data === null ? null : sql.json(x.data) }));
    await sql`insert into public.api_logs ${
      sql(chunk, "tenant_slug", "service", "event", "status", "created_at", "data")
    }`;
  }
}

/** The textbook answer: walk each tenant's state rows in (created_at, id) order. */
function textbook(rows: Row[], since: number, until: number) {
  const stateOf = (d: Row["data"]) => {
    const nested = d?.data as Record<string, unknown> | undefined;
    const v = d?.state ?? nested?.state;
    return v === undefined || v === null ? null : String(v);
  };
  const reasonOf = (d: Row["data"]) => {
    const nested = d?.data as Record<string, unknown> | undefined;
    const v = d?.statusReason ?? nested?.statusReason;
    return v === undefined || v === null ? "unknown" : String(v);
  };
  const out = new Map<
    string,
    { drops: number; closes: number; last: number | null; reasons: Record<string, number>; events: number }
  >();
  for (const slug of SLUGS) {
    const mine = rows
      .filter((x) =>
        x.tenant_slug === slug && x.service === "whatsapp" && x.event === "connection.update" &&
        x.status !== "error"
      )
      .sort((x, y) => x.created_at.getTime() - y.created_at.getTime() || x.id - y.id);
    const t = { drops: 0, closes: 0, last: null as number | null, reasons: {} as Record<string, number>, events: 0 };
    let prev: string | null = null;
    for (const x of mine) {
      const at = x.created_at.getTime();
      const inWindow = at > since && at <= until;
      const state = stateOf(x.data);
      if (inWindow) t.events++;
      if (state === null) continue;
      if (inWindow) {
        if (state === "close") t.closes++;
        if ((state === "connecting" || state === "close") && prev === "open") {
          t.drops++;
          t.last = at;
          const k = reasonOf(x.data);
          t.reasons[k] = (t.reasons[k] ?? 0) + 1;
        }
      }
      if (at > until) break;
      prev = state;
    }
    out.set(slug, t);
  }
  return out;
}

Deno.test("connection_drops() equals the textbook walk over each tenant's rows, for every tenant and window", async () => {
  const sql = testSql();
  await fill(3000, 42);
  const rows = (await sql<Row[]>`
    select id::int, tenant_slug, service, event, status, created_at, data from public.api_logs
    where created_at >= ${new Date(FROM)} and created_at < ${new Date(TO)} and tenant_slug = any (${SLUGS})`)
    .map((x) => ({ ...x, created_at: new Date(x.created_at) }));
  const r = random(7);
  const windows: [number, number][] = [[FROM - 1, TO], [FROM + 3 * 86_400_000, FROM + 3 * 86_400_000 + 7_200_000]];
  for (let i = 0; i < 6; i++) {
    const a = FROM + Math.floor(r() * (TO - FROM) / 1000) * 1000;
    windows.push([a, a + Math.floor(r() * 3 * 86_400_000 / 1000) * 1000]);
  }
  // a window whose bounds fall exactly on rows
  windows.push([rows[100].created_at.getTime(), rows[2000].created_at.getTime()]);
  let drops = 0;
  for (const [since, until] of windows) {
    const expected = textbook(rows, since, until);
    const got = await sql<
      {
        tenant_slug: string;
        drops: number;
        closes: number;
        last_drop_at: Date | null;
        reasons: Record<string, number>;
        events: number;
      }[]
    >`select * from maintenance.connection_drops(${SLUGS}, ${new Date(since)}, ${new Date(until)})`;
    assert.deepEqual(got.map((g) => g.tenant_slug), [...SLUGS].sort());
    for (const g of got) {
      const e = expected.get(g.tenant_slug)!;
      const label = `${g.tenant_slug} in (${new Date(since).toISOString()}, ${new Date(until).toISOString()}]`;
      assert.deepEqual(
        {
          drops: g.drops,
          closes: g.closes,
          last: g.last_drop_at ? new Date(g.last_drop_at).getTime() : null,
          reasons: g.reasons,
          events: g.events,
        },
        e,
        label,
      );
      drops += g.drops;
    }
  }
  assert.ok(drops > 50, `the fixture has drops to count (${drops})`);
});

Deno.test("the connection_drops migration runs again on a database that has its objects, and moves old cross-tenant rows", async () => {
  const sql = testSql();
  const slug = "cd-migr";
  await sql`delete from public.api_logs where tenant_slug = ${slug}`;
  // attempts as the receiver stored them before: under the event they claimed (and one without data.event)
  await sql`insert into public.api_logs (tenant_slug, service, event, status, error_type, data, created_at) values
    (${slug}, 'whatsapp', 'connection.update', 'error', 'cross_tenant',
      ${
    sql.json({ claimedInstance: "revalya-other", expectedInstance: `revalya-${slug}`, event: "connection.update" })
  },
      now() - interval '2 hours'),
    (${slug}, 'whatsapp', 'messages.upsert', 'error', 'cross_tenant', ${sql.json({ instance: "revalya-other" })},
      now() - interval '1 hour'),
    (${slug}, 'whatsapp', 'connection.update', 'success', null, ${sql.json({ state: "open" })},
      now() - interval '3 hours')`;
  const migration = await Deno.readTextFile(
    new URL("../supabase/migrations/20261202006200_connection_drops.sql", import.meta.url),
  );
  // applied twice and checked inside one transaction that is then rolled back: a migration applied again for real
  // would replace what later migrations changed (cross_tenant_attempts, record_tenant_health) for every later test
  const rolledBack = new Error("roll back");
  await sql.begin(async (sql) => {
    await sql.unsafe(migration);
    await sql.unsafe(migration);
    const rows = await sql`select event, status, error_type, data from public.api_logs where tenant_slug = ${slug}
      order by created_at`;
    assert.deepEqual(rows.map((x) => [x.event, x.status, x.data.event ?? null]), [
      ["connection.update", "success", null],
      ["cross_tenant_attempt", "error", "connection.update"],
      ["cross_tenant_attempt", "error", "messages.upsert"],
    ]);
    assert.equal(rows[2].data.instance, "revalya-other", "what the row held is kept");
    const [c] = await sql`select attempts, sample ->> 'event' as event from maintenance.cross_tenant_attempts()
      where tenant_slug = ${slug}`;
    assert.deepEqual([Number(c.attempts), c.event], [2, "messages.upsert"], "the audit still sees both");
    const [d] = await sql`select * from maintenance.tenant_disconnections(${slug}, '1 day')`;
    assert.deepEqual({ ...d }, { closes: 0, last_close_at: null, reasons: {}, events: 1, terminal_closes: 0 });
    throw rolledBack;
  }).catch((e) => {
    if (e !== rolledBack) throw e;
  });
  await sql`delete from public.api_logs where tenant_slug = ${slug}`;
});
