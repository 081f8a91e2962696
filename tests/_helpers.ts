/**
 * @module
 * Test helpers: the throwaway stack started by `npm test` (its URLs and keys), a SQL client on its database,
 * unique tenant slugs, and deps/config built for in-process job tests.
 */
import postgres from "postgres";
import { type Config, loadConfig } from "../shared/config.ts";
import { buildDeps, type Deps } from "../shared/deps.ts";
import { configEnv, type StackInfo } from "../dev/stack.ts";

/** The running test stack's info (from CANAIS_STACK_FILE, set by `npm test`). */
export function stack(): StackInfo {
  const file = Deno.env.get("CANAIS_STACK_FILE");
  if (!file) throw new Error("CANAIS_STACK_FILE is not set: run the tests through `npm test`");
  return JSON.parse(Deno.readTextFileSync(file));
}

let shared: postgres.Sql | undefined;
/** One SQL client on the test database for the whole test process. */
export function testSql(): postgres.Sql {
  shared ??= postgres(stack().dbUrl, { max: 4, prepare: false, onnotice: () => {} });
  return shared;
}

let admin: postgres.Sql | undefined;
/**
 * A SQL client as the platform's superuser (`supabase_admin`), for a test that must write what the platform itself
 * writes (pg_cron's run history, say). Never for anything the bundle does: that runs as `postgres`.
 */
export function adminSql(): postgres.Sql {
  admin ??= postgres(stack().adminDbUrl, { max: 1, prepare: false, onnotice: () => {} });
  return admin;
}

/** A slug nobody else uses: `<prefix>-<random>`. */
export function uniqueSlug(prefix = "t"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Config for in-process tests: the test stack's database and keys, overridable. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ ...configEnv(stack()), ...overrides });
}

/** Deps for in-process tests, sharing the test SQL client. */
export function testDeps(overrides: Partial<Deps> & { env?: Record<string, string> } = {}): Deps {
  const { env, ...rest } = overrides;
  return buildDeps(testConfig(env), { sql: testSql(), ...rest });
}

/** Creates a tenant (and optionally its WhatsApp integration) with a unique slug; returns the slug and ids. */
export async function createTenant(
  options: {
    prefix?: string;
    slug?: string;
    integration?: boolean;
    config?: Record<string, unknown>;
    active?: boolean;
  } = {},
) {
  const sql = testSql();
  const s = stack();
  const slug = options.slug ?? uniqueSlug(options.prefix);
  const [tenant] = await sql<{ id: string }[]>`
    insert into public.tenants (slug, name, is_active) values (${slug}, ${"Tenant " + slug}, ${options.active ?? true})
    returning id`;
  let integrationId: string | null = null;
  if (options.integration !== false) {
    const config = options.config ??
      {
        instance_name: `revalya-${slug}`,
        webhook_url: `${s.webhookBaseUrl}/api/whatsapp/webhook/${slug}`,
        environment: "test",
      };
    const [row] = await sql<{ id: string }[]>`
      insert into public.tenant_integrations (tenant_id, integration_type, config)
      values (${tenant.id}, 'whatsapp', ${sql.json(config as never)}) returning id`;
    integrationId = row.id;
  }
  return { slug, tenantId: tenant.id, integrationId };
}

/** POSTs JSON to a function of the test stack with the secret key. */
export async function callFunction(
  name: string,
  body: unknown = {},
  init: { key?: string | null; path?: string } = {},
) {
  const s = stack();
  const headers: Record<string, string> = { "content-type": "application/json" };
  const key = init.key === undefined ? s.secretKey : init.key;
  if (key) headers.apikey = key;
  const res = await fetch(`${s.functionsUrl}/${name}${init.path ?? ""}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, json: json as Record<string, unknown>, text };
}

/** Polls `fn` every 100 ms until it returns something truthy; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null>,
  timeoutMs = 15_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
