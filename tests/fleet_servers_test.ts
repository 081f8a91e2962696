// The fleet registry with several simulated Evolution servers: register / list / disable / drain / remove through
// whatsapp-ops (refused while used, 4xx for bad input, audited, no key in any answer, audit row or log), the
// conversion of a tenant migrated before the registry, the link migrate writes (and its rollback), fix of a missing
// instance on the tenant's own server, placement of a tenant with no server, and the CLI.
import assert from "node:assert/strict";
import { type Simulator, startSimulator } from "../dev/evolution_sim/app.ts";
import { createOpsApp } from "../shared/ops/app.ts";
import { placementFor } from "../shared/evolution/servers.ts";
import { loadTenant, serverFor } from "../shared/ops/tenants.ts";
import { configOf, healthyTenant, opsCall, opsFixture } from "./ops_fixture.ts";
import { createTenant, liveNames, stack, testSql, uniqueSlug } from "./_helpers.ts";

const sql = () => testSql();

/** Removes servers the test registered (and their tenants' links). */
async function dropServers(names: string[]) {
  await sql()`delete from maintenance.tenant_servers where server_id in (
    select id from maintenance.evolution_servers where name = any (${names}::text[]))`;
  for (const n of names) await sql()`select maintenance.remove_evolution_server(${n})`;
}

async function dropTenants(slugs: string[]) {
  await sql()`delete from public.tenants where slug = any (${slugs}::text[])`;
}

/** Every place a key could leak to: answers (given), audit rows, api_logs, the registry's own tables. */
async function storedLeaks(keys: string[]) {
  const [{ n }] = await sql()<{ n: number }[]>`
    select count(*)::int as n from unnest(${keys}::text[]) as k(value) where exists (
        select 1 from maintenance.actions_audit x where strpos(to_jsonb(x)::text, k.value) > 0)
      or exists (select 1 from public.api_logs x where strpos(x.data::text || coalesce(x.error_type, ''), k.value) > 0)
      or exists (select 1 from maintenance.evolution_servers x where strpos(to_jsonb(x)::text, k.value) > 0)
      or exists (select 1 from maintenance.evolution_server_load x where strpos(to_jsonb(x)::text, k.value) > 0)
      or exists (select 1 from public.tenant_integrations x where strpos(x.config::text, k.value) > 0)`;
  return n;
}

/** Captures what the code under test writes to the console while `fn` runs. */
async function capturingConsole<T>(fn: () => Promise<T>): Promise<{ value: T; logged: string }> {
  const lines: string[] = [];
  const saved = { log: console.log, error: console.error, warn: console.warn, info: console.info };
  const keep = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  Object.assign(console, { log: keep, error: keep, warn: keep, info: keep });
  try {
    return { value: await fn(), logged: lines.join("\n") };
  } finally {
    Object.assign(console, saved);
  }
}

/** The server a tenant is linked to, with how it got there (null: no link). */
async function linkOf(slug: string) {
  const [row] = await sql()<{ name: string; base_url: string; placed_by: string; draining: boolean }[]>`
    select s.name, s.base_url, ts.placed_by, s.draining from maintenance.tenant_servers ts
    join maintenance.evolution_servers s on s.id = ts.server_id
    join public.tenants t on t.id = ts.tenant_id where t.slug = ${slug}`;
  return row ? { ...row } : null;
}

const has = (s: Simulator, name: string) => s.control.instances().some((i) => i.name === name && i.phase === "active");

Deno.test("whatsapp-ops servers: register, list, drain, disable, enable, remove; audited, no key anywhere", async (t) => {
  const f = await opsFixture();
  const b = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const name = uniqueSlug("srv-b");
  const slugs: string[] = [];
  const answers: string[] = [];
  const call = async (action: string, body: unknown) => {
    const r = await opsCall(app, f, `servers/${action}`, body);
    answers.push(r.text);
    return r;
  };
  try {
    const { logged } = await capturingConsole(async () => {
      await t.step("register asks the server (GET /, the key) and stores it with its version", async () => {
        const r = await call("register", { name, url: `${b.url}/`, key: b.apiKey, capacity: 50 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.result, "ok");
        assert.deepEqual(
          {
            name: r.json.after.name,
            url: r.json.after.url,
            version: r.json.after.version,
            capacity: r.json.after.capacity,
            tenants: r.json.after.tenants,
            enabled: r.json.after.enabled,
            draining: r.json.after.draining,
            keyIn: r.json.after.keyIn,
          },
          {
            name,
            url: b.url,
            version: "2.3.7",
            capacity: 50,
            tenants: 0,
            enabled: true,
            draining: false,
            keyIn: "vault",
          },
        );
        assert.ok(b.control.stats().calls.info >= 1, "GET / was asked");
        const [row] = await sql()<{ key: string }[]>`
          select d.decrypted_secret as key from maintenance.evolution_servers s
          join vault.decrypted_secrets d on d.id = s.key_secret_id where s.name = ${name}`;
        assert.equal(row.key, b.apiKey, "the key is in Vault");
      });

      await t.step(
        "list: every server with its tenant count, the default one registered on start, no key",
        async () => {
          const r = await call("list", {});
          assert.equal(r.status, 200, r.text);
          const def = r.json.servers.find((s: { name: string }) => s.name === "default");
          assert.equal(def.url, f.sim.url, "the default server is EVOLUTION_API_URL's, registered by the first call");
          assert.equal(def.keyIn, "environment");
          assert.ok(def.tenants >= 0);
          const mine = r.json.servers.find((s: { name: string }) => s.name === name);
          assert.equal(mine.tenants, 0);
          assert.ok(!("key_secret_id" in mine) && !("keySecretId" in mine), "not even the secret's id");
        },
      );

      await t.step("bad input is a 4xx naming the field; nothing is stored", async () => {
        const cases: Array<[string, Record<string, unknown>, number, string]> = [
          ["no url, no key", { name: "srv-x" }, 400, "url"],
          ["a bad name", { name: "Bad Name", url: b.url, key: "k" }, 400, "name"],
          ["the reserved name", { name: "default", url: "http://127.0.0.1:9", key: "k" }, 400, "name"],
          ["credentials in the URL", { name: "srv-x", url: "http://u:p@127.0.0.1:9", key: "k" }, 400, "url"],
          ["a query in the URL", { name: "srv-x", url: "http://127.0.0.1:9/?k=v", key: "k" }, 400, "url"],
          ["capacity 0", { name: "srv-x", url: "http://127.0.0.1:9", key: "k", capacity: 0 }, 400, "capacity"],
          ["an unknown field", { name: "srv-x", url: "http://127.0.0.1:9", key: "k", zone: "eu" }, 400, "(body)"],
          ["a taken name", { name, url: "http://127.0.0.1:9", key: "k" }, 409, "name"],
          ["a taken URL", { name: "srv-x", url: b.url, key: b.apiKey }, 409, "url"],
          ["the default server's URL", { name: "srv-x", url: f.sim.url, key: "k" }, 409, "url"],
          ["a server that does not answer", { name: "srv-x", url: "http://127.0.0.1:1", key: "k" }, 400, "url"],
        ];
        for (const [label, body, status, field] of cases) {
          const r = await call("register", body);
          assert.equal(r.status, status, `${label}: ${r.text}`);
          const fields = (r.json.error.details ?? []).map((d: { field: string }) => d.field);
          assert.ok(fields.includes(field), `${label}: names '${field}' (${r.text})`);
        }
        const other = await startSimulator({ port: 0 });
        try {
          const r = await call("register", { name: "srv-x", url: other.url, key: "not-its-key" });
          assert.equal(r.status, 400, r.text);
          assert.equal(r.json.error.code, "key_refused");
          assert.equal(r.json.error.details[0].field, "key");
        } finally {
          await other.close();
        }
        const [{ n }] = await sql()<{ n: number }[]>`
          select count(*)::int as n from maintenance.evolution_servers where name = 'srv-x'`;
        assert.equal(n, 0, "no refused server was stored");
        const [{ refused }] = await sql()<{ refused: number }[]>`
          select count(*)::int as refused from maintenance.actions_audit
          where action = 'servers.register' and result = 'refused' and after ->> 'name' = 'srv-x'`;
        assert.ok(refused >= 4, "the refusals are audited");
      });

      await t.step("drain, then drain again (nothing to do); undrain", async () => {
        const r = await call("drain", { name });
        assert.equal(r.json.result, "ok", r.text);
        assert.equal(r.json.after.draining, true);
        const again = await call("drain", { name });
        assert.equal(again.json.result, "nothing_to_do");
        assert.equal((await call("undrain", { name })).json.after.draining, false);
      });

      await t.step("disable is a plan unless apply; enable undoes it", async () => {
        const plan = await call("disable", { name });
        assert.equal(plan.json.result, "planned", plan.text);
        assert.equal(plan.json.dryRun, true);
        assert.match(plan.json.plan[0], /no placement or migration to it/);
        assert.equal(
          (await call("list", {})).json.servers.find((s: { name: string }) => s.name === name).enabled,
          true,
        );
        const done = await call("disable", { name, apply: true });
        assert.equal(done.json.result, "ok");
        assert.equal(done.json.after.enabled, false);
        assert.equal((await call("enable", { name })).json.after.enabled, true);
      });

      await t.step("remove: confirm first; refused with a 409 naming the count while tenants use it", async () => {
        const noConfirm = await call("remove", { name, apply: true });
        assert.equal(noConfirm.status, 400);
        assert.equal(noConfirm.json.error.details[0].field, "confirm");
        const tenant = await createTenant({ prefix: "srv-use" });
        slugs.push(tenant.slug);
        await sql()`select * from maintenance.link_tenant_server(${tenant.tenantId}, ${b.url}, null, null, 'operator')`;
        const used = await call("remove", { name, confirm: name, apply: true });
        assert.equal(used.status, 409, used.text);
        assert.equal(used.json.error.code, "server_in_use");
        assert.equal(used.json.error.details.tenants, 1);
        assert.match(used.json.error.message, /1 tenant uses it/);
        const listed = (await call("list", {})).json.servers.find((s: { name: string }) => s.name === name);
        assert.equal(listed.tenants, 1, "the list counts it");
        const def = await call("remove", { name: "default", confirm: "default", apply: true });
        assert.equal(def.status, 400, def.text);
        assert.equal(def.json.error.details[0].field, "name");
        assert.equal((await call("drain", { name: "srv-nowhere" })).status, 404);
        await dropTenants(slugs.splice(0));
      });

      await t.step("remove without apply is a plan; with apply the row and its key are gone", async () => {
        const [{ secret }] = await sql()<{ secret: string }[]>`
          select key_secret_id::text as secret from maintenance.evolution_servers where name = ${name}`;
        const plan = await call("remove", { name, confirm: name });
        assert.equal(plan.json.result, "planned", plan.text);
        assert.equal((await call("list", {})).json.servers.some((s: { name: string }) => s.name === name), true);
        const done = await call("remove", { name, confirm: name, apply: true });
        assert.equal(done.json.result, "ok", done.text);
        assert.equal((await call("list", {})).json.servers.some((s: { name: string }) => s.name === name), false);
        const [{ n }] = await sql()<{ n: number }[]>`select count(*)::int as n from vault.secrets where id = ${secret}`;
        assert.equal(n, 0, "the key is dropped from Vault");
      });
    });

    await t.step("every action is audited; no key in any answer, audit row, api_logs row or log line", async () => {
      const rows = await sql()<{ action: string; result: string; dry_run: boolean }[]>`
        select action, result, dry_run from maintenance.actions_audit
        where action like 'servers.%' and (after ->> 'name' = ${name} or before ->> 'name' = ${name})
        order by id`;
      const seen = rows.map((r) => `${r.action}:${r.result}${r.dry_run ? ":dry" : ""}`);
      for (
        const want of [
          "servers.register:ok",
          "servers.drain:ok",
          "servers.drain:skipped",
          "servers.undrain:ok",
          "servers.disable:planned:dry",
          "servers.disable:ok",
          "servers.enable:ok",
          "servers.remove:refused",
          "servers.remove:planned:dry",
          "servers.remove:ok",
        ]
      ) assert.ok(seen.includes(want), `${want} in ${seen.join(", ")}`);
      await f.deps.evolution.flushLogs();
      const keys = [b.apiKey, f.sim.apiKey];
      for (const text of [...answers, logged]) for (const k of keys) assert.ok(!text.includes(k), "no key answered");
      assert.equal(await storedLeaks(keys), 0, "no key stored outside Vault");
    });
  } finally {
    await dropTenants(slugs);
    await dropServers([name]).catch(() => {});
    await b.close();
    await f.close();
  }
});

Deno.test("convert_legacy_server_links() converts a tenant migrated before the registry; actions follow it", async () => {
  const f = await opsFixture();
  const c = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const { slug, integrationId } = await createTenant({ prefix: "conv" });
  const name = `revalya-${slug}`;
  let server: string | null = null;
  try {
    // what migrate wrote before the registry: the URL in the row, the key in Vault
    const [{ id: secret }] = await sql()<{ id: string }[]>`
      select maintenance.store_evolution_key(${slug}, ${c.apiKey}) as id`;
    await sql()`update public.tenant_integrations
      set config = config || ${sql().json({ evolution_api_url: `${c.url}/`, evolution_api_key_secret_id: secret })}
      where id = ${integrationId}`;
    const hook = await f.deps.evolution.expectedWebhook(slug);
    c.control.seedInstance(name, { state: "open", webhookUrl: hook.url, webhookHeaders: hook.headers });
    assert.equal((await serverFor(f.deps, await loadTenant(sql(), slug))).source, "config", "the fallback, before");

    const [r] = await sql()<{ servers_created: number; tenants_linked: number }[]>`
      select * from maintenance.convert_legacy_server_links()`;
    assert.ok(r.servers_created >= 1 && r.tenants_linked >= 1, JSON.stringify(r));
    const link = await linkOf(slug);
    assert.equal(link?.base_url, c.url, "a server row for the row's URL (normalised), and the link");
    assert.equal(link?.placed_by, "conversion");
    assert.equal(link?.draining, true, "a server nobody chose takes no automatic placements");
    server = link!.name;
    const [{ key_secret_id }] = await sql()<{ key_secret_id: string }[]>`
      select key_secret_id::text from maintenance.evolution_servers where name = ${server}`;
    assert.equal(key_secret_id, secret, "its key is the row's secret");
    await sql()`select * from maintenance.convert_legacy_server_links()`;
    assert.deepEqual(await linkOf(slug), link, "running it again changes nothing for this tenant");

    const resolved = await serverFor(f.deps, await loadTenant(sql(), slug));
    assert.deepEqual([resolved.source, resolved.server, resolved.client.baseUrl], ["link", server, c.url]);
    const d = await opsCall(app, f, "diagnose", { slug });
    assert.equal(d.json.connection.code, "ok", d.text);
    assert.equal(d.json.connection.evidence.evolutionUrl, c.url, "diagnose acts on the tenant's server");

    // the product rewrites the config row (drops the server keys): the link keeps the tenant on its server
    await sql()`update public.tenant_integrations set config = ${sql().json({ instance_name: name })}
      where id = ${integrationId}`;
    assert.equal((await serverFor(f.deps, await loadTenant(sql(), slug))).client.baseUrl, c.url);
    // a later migrate away drops the tenant's old key only if no server row names it
    const [{ dropped }] = await sql()<{ dropped: boolean }[]>`
      select maintenance.drop_evolution_key(${secret}::uuid) as dropped`;
    assert.equal(dropped, false, "the server's key is kept");
  } finally {
    await dropTenants([slug]);
    if (server) await dropServers([server]);
    await c.close();
    await f.close();
  }
});

Deno.test("migrate writes the tenant's link with the config and key; a rollback puts it back", async (t) => {
  const f = await opsFixture();
  const b = await startSimulator({ port: 0 });
  const c = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const bName = uniqueSlug("mig-b");
  const servers = [bName];
  const slugs: string[] = [];
  const move = (slug: string, to: Simulator, extra: Record<string, unknown> = {}) =>
    opsCall(app, f, "migrate", { slug, apiUrl: to.url, apiKey: to.apiKey, apply: true, ...extra });
  try {
    const reg = await opsCall(app, f, "servers/register", { name: bName, url: b.url, key: b.apiKey });
    assert.equal(reg.status, 200, reg.text);
    const tenant = await healthyTenant(f, "mig");
    slugs.push(tenant.slug);

    await t.step("to a registered server: the link names it, the count follows", async () => {
      const r = await move(tenant.slug, b);
      assert.equal(r.json.result, "ok", r.text);
      assert.deepEqual(await linkOf(tenant.slug), {
        name: bName,
        base_url: b.url,
        placed_by: "migrate",
        draining: false,
      });
      assert.equal((await configOf(tenant.slug))!.evolution_api_url, b.url, "the legacy keys are still written");
      const list = await opsCall(app, f, "servers/list", {});
      assert.equal(list.json.servers.find((s: { name: string }) => s.name === bName).tenants, 1);
      assert.ok(has(b, tenant.instance) && !has(f.sim, tenant.instance));
    });

    await t.step("to an unregistered URL: registered under its host's name, draining; B's key is kept", async () => {
      const r = await move(tenant.slug, c);
      assert.equal(r.json.result, "ok", r.text);
      const link = await linkOf(tenant.slug);
      servers.push(link!.name);
      assert.equal(link?.base_url, c.url);
      assert.equal(link?.draining, true);
      const save = r.json.steps.find((s: { step: string }) => s.step === "save_config");
      assert.deepEqual(save.detail.server, { name: link!.name, registered: true });
      const client = await serverFor(f.deps, await loadTenant(sql(), tenant.slug));
      assert.equal(client.client.baseUrl, c.url);
      const [{ n }] = await sql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.evolution_servers s join vault.secrets v on v.id = s.key_secret_id
        where s.name = ${bName}`;
      assert.equal(n, 1, "migrate dropped the tenant's previous key, not the server's");
      const [{ mine }] = await sql()<{ mine: number }[]>`
        select count(*)::int as mine from vault.secrets where name like ${`evolution_api_key/${tenant.slug}/%`}`;
      assert.equal(mine, 1, "one key of the tenant's left: the one it moved with, now also C's");
    });

    await t.step("a failure after the save rolls the link back with the config", async () => {
      const before = await linkOf(tenant.slug);
      const d = await startSimulator({ port: 0 });
      try {
        c.control.fault({ route: "delete", kind: "status500" });
        const r = await move(tenant.slug, d);
        c.control.clearFaults();
        assert.equal(r.json.result, "rolled_back", r.text);
        assert.deepEqual(await linkOf(tenant.slug), before, "the link is as before");
        const [{ n }] = await sql()<{ n: number }[]>`
          select count(*)::int as n from maintenance.evolution_servers where base_url = ${d.url}`;
        assert.equal(n, 0, "the server row it registered is gone");
      } finally {
        await d.close();
      }
    });

    await t.step("to a disabled server: refused at the check, nothing created", async () => {
      const other = await healthyTenant(f, "mig-off");
      slugs.push(other.slug);
      await opsCall(app, f, "servers/disable", { name: bName, apply: true });
      const r = await move(other.slug, b);
      assert.equal(r.json.result, "failed", r.text);
      assert.equal(r.json.failedStep, "check_new_server");
      assert.match(r.json.error, /disabled/);
      assert.equal(await linkOf(other.slug), null);
      assert.ok(!has(b, other.instance));
      await opsCall(app, f, "servers/enable", { name: bName });
    });
    await f.deps.evolution.flushLogs();
    assert.equal(await storedLeaks([b.apiKey, c.apiKey]), 0, "no key stored outside Vault");
  } finally {
    await dropTenants(slugs);
    await dropServers(servers).catch(() => {});
    await b.close();
    await c.close();
    await f.close();
  }
});

/** Runs `fn` with every server but `keep` draining (placement sees only those), then restores every flag. */
async function onlyPlacing<T>(keep: string[], fn: () => Promise<T>): Promise<T> {
  const saved = await sql()<{ name: string; draining: boolean }[]>`
    select name, draining from maintenance.evolution_servers`;
  await sql()`update maintenance.evolution_servers set draining = true where not (name = any (${keep}::text[]))`;
  try {
    return await fn();
  } finally {
    for (const s of saved) {
      await sql()`update maintenance.evolution_servers set draining = ${s.draining} where name = ${s.name}`;
    }
  }
}

Deno.test("placementFor() picks the least-loaded enabled, non-draining server", async () => {
  class Rollback extends Error {}
  await sql().begin(async (tx) => {
    await tx`update maintenance.evolution_servers set draining = true`;
    const add = async (name: string, capacity: number, tenants: number, flags = { enabled: true, draining: false }) => {
      const [s] = await tx<{ id: string }[]>`
        insert into maintenance.evolution_servers (name, base_url, key_secret_id, capacity, enabled, draining)
        values (${name}, ${`http://${name}.test:8080`}, gen_random_uuid(), ${capacity}, ${flags.enabled},
          ${flags.draining}) returning id`;
      for (let i = 0; i < tenants; i++) {
        const [t] = await tx<{ id: string }[]>`
          insert into public.tenants (slug) values (${uniqueSlug(`pl-${name}`)}) returning id`;
        await tx`insert into maintenance.tenant_servers (tenant_id, server_id, placed_by)
          values (${t.id}, ${s.id}, 'operator')`;
      }
    };
    assert.equal(await placementFor(tx), null, "no server takes new tenants: none");
    await add("pl-small-full", 2, 2); // 100 %
    await add("pl-big-busy", 100, 5); // 5 %, the least loaded of those taking tenants
    await add("pl-mid", 10, 1); // 10 %
    await add("pl-empty-off", 10, 0, { enabled: false, draining: false }); // disabled
    await add("pl-empty-draining", 10, 0, { enabled: true, draining: true }); // draining
    assert.equal((await placementFor(tx))?.name, "pl-big-busy", "the lowest tenants/capacity, not the fewest tenants");
    await tx`update maintenance.evolution_servers set draining = true where name = 'pl-big-busy'`;
    assert.equal((await placementFor(tx))?.name, "pl-mid");
    await tx`update maintenance.evolution_servers set enabled = false where name = 'pl-mid'`;
    const full = await placementFor(tx);
    assert.equal(full?.name, "pl-small-full", "a full server is still chosen when every candidate is full");
    assert.ok(full!.tenants >= full!.capacity, "… and says so");
    throw new Rollback();
  }).catch((e) => {
    if (!(e instanceof Rollback)) throw e;
  });
});

Deno.test("fix creates a missing instance on the tenant's server, or places a tenant with no server", async (t) => {
  const f = await opsFixture();
  const b = await startSimulator({ port: 0 });
  const c = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const bName = uniqueSlug("fix-b");
  const cName = uniqueSlug("fix-c");
  const slugs: string[] = [];
  try {
    for (const [n, s] of [[bName, b], [cName, c]] as const) {
      const r = await opsCall(app, f, "servers/register", { name: n, url: s.url, key: s.apiKey, capacity: 10 });
      assert.equal(r.status, 200, r.text);
    }

    await t.step("a tenant on server B: fix creates its instance on B and nowhere else", async () => {
      const tenant = await createTenant({ prefix: "fix-on-b" });
      slugs.push(tenant.slug);
      const name = `revalya-${tenant.slug}`;
      await sql()`select * from maintenance.link_tenant_server(${tenant.tenantId}, ${b.url}, null, null, 'operator')`;
      const r = await opsCall(app, f, "fix", { slug: tenant.slug });
      assert.equal(r.json.result, "ok", r.text);
      assert.equal(r.json.diagnosis.connection.evidence.evolutionUrl, b.url, "diagnosed on B");
      assert.ok(has(b, name), "created on B");
      assert.ok(!has(f.sim, name) && !has(c, name), "and on no other server");
      const hook = b.control.instances().find((i) => i.name === name)!.webhook!;
      assert.equal(hook.url, (await f.deps.evolution.expectedWebhook(tenant.slug)).url, "with the tenant's webhook");
      assert.equal((await linkOf(tenant.slug))?.name, bName, "the link is unchanged");
    });

    await t.step("a tenant with no server: placed on the least-loaded server, linked, created there", async () => {
      const tenant = await createTenant({ prefix: "fix-new" });
      slugs.push(tenant.slug);
      const name = `revalya-${tenant.slug}`;
      // B holds one tenant (above), C none: with only B and C taking tenants, C is the least loaded
      const r = await onlyPlacing([bName, cName], () => opsCall(app, f, "fix", { slug: tenant.slug }));
      assert.equal(r.json.result, "ok", r.text);
      const step = r.json.steps.find((s: { step: string }) => s.step === "create_instance");
      assert.equal(step.detail.placedOn, cName);
      assert.ok(has(c, name), "created on C");
      assert.ok(!has(f.sim, name) && !has(b, name), "and on no other server");
      assert.deepEqual(await linkOf(tenant.slug), {
        name: cName,
        base_url: c.url,
        placed_by: "placement",
        draining: false,
      });
      const cfg = (await configOf(tenant.slug))!;
      assert.equal(cfg.evolution_api_url, c.url, "the legacy keys for the jobs that do not read the registry yet");
      assert.match(String(cfg.evolution_api_key_secret_id), /^[0-9a-f-]{36}$/);
      const again = await opsCall(app, f, "diagnose", { slug: tenant.slug });
      assert.equal(again.json.connection.evidence.evolutionUrl, c.url, "later actions use its server");
    });

    await t.step(
      "a tenant linked to a disabled server: fix creates nothing anywhere and says how to go on",
      async () => {
        const tenant = await createTenant({ prefix: "fix-off" });
        slugs.push(tenant.slug);
        const name = `revalya-${tenant.slug}`;
        await sql()`select * from maintenance.link_tenant_server(${tenant.tenantId}, ${c.url}, null, null, 'operator')`;
        await sql()`update maintenance.evolution_servers set enabled = false where name = ${cName}`;
        try {
          const r = await opsCall(app, f, "fix", { slug: tenant.slug, apply: true });
          const step = r.json.steps?.find((s: { step: string }) => s.step === "create_instance");
          assert.ok(step, r.text);
          assert.match(step.error, /is disabled: enable it .*servers enable .* or move the tenant/);
          assert.ok(![f.sim, b, c].some((s) => liveNames(s).includes(name)), "no instance on any server");
          assert.equal((await linkOf(tenant.slug))?.name, cName, "the link is unchanged");
        } finally {
          await sql()`update maintenance.evolution_servers set enabled = true where name = ${cName}`;
        }
      },
    );

    await t.step("no server takes new tenants: fix creates nothing and says why", async () => {
      const tenant = await createTenant({ prefix: "fix-none" });
      slugs.push(tenant.slug);
      const r = await onlyPlacing([], () => opsCall(app, f, "fix", { slug: tenant.slug }));
      assert.equal(r.json.result, "failed", r.text);
      const step = r.json.steps.find((s: { step: string }) => s.step === "create_instance");
      assert.match(step.error, /no Evolution server takes new tenants/);
      assert.equal(await linkOf(tenant.slug), null);
      assert.ok(![f.sim, b, c].some((s) => liveNames(s).includes(`revalya-${tenant.slug}`)));
    });
  } finally {
    await dropTenants(slugs);
    await dropServers([bName, cName]).catch(() => {});
    await b.close();
    await c.close();
    await f.close();
  }
});

Deno.test("ops CLI: servers register (key from a variable), list, drain, remove; no key printed", async () => {
  const s = stack();
  const sim = await startSimulator({ port: 0 });
  const name = uniqueSlug("cli-srv");
  const ops = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "dev/ops.ts", ...args],
      env: {
        SUPABASE_URL: s.functionsUrl.replace(/\/functions\/v1$/, ""),
        SUPABASE_SECRET_KEY: s.secretKey,
        DENO_TLS_CA_STORE: "system",
        CLI_SERVER_KEY: sim.apiKey,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    const text = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    assert.ok(!(text.stdout + text.stderr).includes(sim.apiKey), "no key printed");
    return text;
  };
  try {
    const reg = await ops("servers", "register", name, "--url", sim.url, "--key-env", "CLI_SERVER_KEY");
    assert.equal(reg.code, 0, reg.stdout + reg.stderr);
    assert.match(reg.stdout, new RegExp(`servers.register ${name}: ok`));
    const list = await ops("servers", "list");
    assert.equal(list.code, 0, list.stderr);
    assert.match(
      list.stdout,
      new RegExp(`${name}\\s+enabled\\s+0/1000\\s+2\\.3\\.7\\s+${sim.url.replace(/\./g, "\\.")}`),
    );
    assert.match(list.stdout, /default\s+/);
    const json = JSON.parse((await ops("servers", "list", "--json")).stdout);
    assert.ok(json.servers.some((x: { name: string }) => x.name === name));
    assert.equal((await ops("servers", "drain", name)).code, 0);
    const usage = await ops("servers", "remove");
    assert.equal(usage.code, 2, "a missing name is a usage error");
    const refused = await ops("servers", "remove", name, "--confirm", "nope", "--apply");
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /400 confirm_mismatch/);
    const dry = await ops("servers", "remove", name, "--confirm", name);
    assert.match(dry.stdout, /planned \(dry run\)/);
    const removed = await ops("servers", "remove", name, "--confirm", name, "--apply");
    assert.equal(removed.code, 0, removed.stdout + removed.stderr);
    assert.ok(!(await ops("servers", "list")).stdout.includes(name));
  } finally {
    await dropServers([name]).catch(() => {});
    await sim.close();
  }
});

Deno.test("diagnose, reconnect and reset of a tenant on server B act on B and nowhere else", async (t) => {
  const f = await opsFixture();
  const b = await startSimulator({ port: 0, webhookRetryDelaysMs: [50, 100] });
  const app = createOpsApp(f.deps);
  const bName = uniqueSlug("act-b");
  const tenant = await createTenant({ prefix: "act-on-b" });
  const name = `revalya-${tenant.slug}`;
  try {
    const r = await opsCall(app, f, "servers/register", { name: bName, url: b.url, key: b.apiKey });
    assert.equal(r.status, 200, r.text);
    await sql()`select * from maintenance.link_tenant_server(${tenant.tenantId}, ${b.url}, null, null, 'operator')`;
    const hook = await f.deps.evolution.expectedWebhook(tenant.slug);
    b.control.seedInstance(name, { state: "close", webhookUrl: hook.url, webhookHeaders: hook.headers });
    // a decoy of the same name on the default server: nothing may touch it
    f.sim.control.seedInstance(name, { state: "open", webhookUrl: hook.url, webhookHeaders: hook.headers });
    const decoy = () => JSON.stringify(f.sim.control.instances().find((i) => i.name === name));
    const decoyBefore = decoy();
    const callsOnA = () => f.sim.control.stats().total;

    await t.step("diagnose reads B", async () => {
      const a0 = callsOnA();
      const d = await opsCall(app, f, "diagnose", { slug: tenant.slug });
      assert.equal(d.status, 200, d.text);
      assert.equal(d.json.connection.evidence.evolutionUrl, b.url);
      assert.match(d.text, /"not_connected"/, "B's closed instance, not A's open decoy");
      assert.equal(callsOnA(), a0, "no call reached the default server");
    });

    await t.step("reconnect connects B's instance", async () => {
      const a0 = callsOnA();
      const rc = await opsCall(app, f, "reconnect", { slug: tenant.slug });
      assert.equal(rc.status, 200, rc.text);
      assert.notEqual(rc.json.result, "failed", rc.text);
      assert.notEqual(b.control.instances().find((i) => i.name === name)!.state, "close", "B's instance connects");
      assert.equal(callsOnA(), a0);
      assert.equal(decoy(), decoyBefore);
    });

    await t.step("reset recreates the instance on B, keeps the tenant there and enabled", async () => {
      const a0 = callsOnA();
      const rs = await opsCall(app, f, "reset", { slug: tenant.slug, confirm: tenant.slug, apply: true });
      assert.equal(rs.json.result, "ok", rs.text);
      assert.ok(has(b, name), "a new instance on B");
      assert.equal(b.control.instances().find((i) => i.name === name && i.phase === "active")!.state, "close");
      assert.equal(callsOnA(), a0, "no call reached the default server");
      assert.equal(decoy(), decoyBefore, "the default server's instance of that name is untouched");
      assert.equal((await linkOf(tenant.slug))?.name, bName, "still linked to B");
      const [row] = await sql()<{ is_active: boolean }[]>`
        select is_active from public.tenant_integrations where id = ${tenant.integrationId}`;
      assert.equal(row.is_active, true);
      const d = await opsCall(app, f, "diagnose", { slug: tenant.slug });
      assert.equal(d.json.connection.evidence.evolutionUrl, b.url, "its next action goes to B again");
    });
  } finally {
    await dropTenants([tenant.slug]);
    await dropServers([bName]).catch(() => {});
    await b.close();
    await f.close();
  }
});
