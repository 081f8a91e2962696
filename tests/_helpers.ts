/**
 * @module
 * Test helpers: the throwaway stack started by `npm test` (its URLs and keys), a SQL client on its database,
 * unique tenant slugs, and deps/config built for in-process job tests.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type Config, loadConfig } from "../shared/config.ts";
import { buildDeps, type Deps } from "../shared/deps.ts";
import { configEnv, type StackInfo } from "../dev/stack.ts";
import { ROOT } from "../dev/paths.ts";

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

/** pg_net's answer to a request (waits for it). */
export async function netResponse(requestId: string | number, timeoutMs = 15_000) {
  return await waitFor(`pg_net's answer to request ${requestId}`, async () => {
    const [r] = await testSql()<
      { status_code: number | null; content: string | null; error_msg: string | null; created: Date }[]
    >`select status_code, content, error_msg, created from net._http_response where id = ${requestId}`;
    return r;
  }, timeoutMs);
}

/** A job run once it has finished (waits while it is `running`). */
export async function finishedRun(runId: string, timeoutMs = 60_000) {
  return await waitFor(`run ${runId} to finish`, async () => {
    const [r] = await testSql()<
      { job: string; status: string; trigger: string; report: Record<string, unknown>; finished_at: Date | null }[]
    >`select job, status, trigger, report, finished_at from maintenance.job_runs where id = ${runId}`;
    return r && r.status !== "running" ? r : null;
  }, timeoutMs);
}

/**
 * A scheduled call as pg_cron makes it, followed to its end: pg_net's answer (a scheduled call is answered
 * `202 {job, runId, status: "running"}` at once) and the run it started, once finished.
 */
export async function followScheduledCall(requestId: string | number, job: string) {
  const answer = await netResponse(requestId);
  assert.equal(answer.status_code, 202, `${job}: ${answer.content ?? answer.error_msg}`);
  const body = JSON.parse(answer.content!);
  assert.deepEqual(Object.keys(body).sort(), ["job", "runId", "status"]);
  assert.equal(body.job, job);
  assert.equal(body.status, "running");
  return { answer, runId: String(body.runId), run: await finishedRun(String(body.runId)) };
}

/** A functions router of a test's own: a separate process, like an isolate the platform may replace at any time. */
export interface Router {
  port: number;
  /** `http://127.0.0.1:<port>/functions/v1` */
  functionsUrl: string;
  health: { functions: string[]; bootErrors: Record<string, string> };
  /** Stops it: SIGTERM (background work gets a few seconds) or SIGKILL (an isolate that dies mid-run). */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<string>;
}

/**
 * Starts dev/functions_router.ts on `port` with the stack's function environment (configEnv) overridden by `env`,
 * and waits until it serves. Nothing of the test process's environment leaks in.
 */
export async function startRouter(port: number, env: Record<string, string> = {}): Promise<Router> {
  const child = new Deno.Command(`${ROOT}/node_modules/.bin/deno`, {
    args: ["run", "-A", "--quiet", "dev/functions_router.ts"],
    cwd: ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/root",
      DENO_TLS_CA_STORE: "system",
      DENO_NO_UPDATE_CHECK: "1",
      ...configEnv(stack()),
      ...env,
      FUNCTIONS_PORT: String(port),
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  const output = child.output().then((o) => new TextDecoder().decode(o.stderr));
  const stop = (signal: "SIGTERM" | "SIGKILL" = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* gone already */ }
    return output;
  };
  try {
    const health = await waitFor(`the functions router on :${port}`, async () => {
      const res = await fetch(`${base}/_stack/health`).catch(() => null);
      return res?.ok ? await res.json() as Router["health"] : null;
    }, 30_000);
    return { port, functionsUrl: `${base}/functions/v1`, health, stop };
  } catch (error) {
    throw new Error(`${(error as Error).message}: ${await stop("SIGKILL")}`);
  }
}

/** Points the scheduled calls (Vault's `project_url`) at another functions URL until `restore()`. */
export async function pointScheduledCallsAt(functionsUrl: string): Promise<{ restore(): Promise<void> }> {
  const sql = testSql();
  const [{ id, url }] = await sql<{ id: string; url: string }[]>`
    select id, decrypted_secret as url from vault.decrypted_secrets where name = 'project_url'`;
  await sql`select vault.update_secret(${id}, ${functionsUrl.replace(/\/functions\/v1$/, "")})`;
  return { restore: async () => void await sql`select vault.update_secret(${id}, ${url})` };
}

/**
 * The instance names a simulator serves as live. A deleted instance keeps its name taken (phase `removing`, then
 * `cleanup`) until Evolution's own clean-up ends, as the real server does: "gone" in a test means "deleted", not
 * "already free".
 */
export function liveNames(sim: { control: { instances(): { name: string; phase: string }[] } }): string[] {
  return sim.control.instances().filter((i) => i.phase === "active").map((i) => i.name).sort();
}

/**
 * Deletes the tenants a test file created (their slugs start with `prefix`, e.g. "fr-"), so that a later unscoped
 * health-check does not see them go down with their simulator and raise a platform incident for another test.
 */
export async function dropTenantsLike(prefix: string): Promise<void> {
  if (!/^[a-z0-9]+-$/.test(prefix)) throw new Error(`a test tenant prefix like "fr-", not ${JSON.stringify(prefix)}`);
  await testSql()`delete from public.tenants where slug like ${prefix + "%"}`;
}

/**
 * Removes the fleet registry's rows of the servers at `urls` (a simulator a test started and is closing: a migrate
 * target registers itself) with their tenants' links and keys, so that the fleet-aware jobs of later tests do not
 * list a closed simulator. The default server is never removed.
 */
export async function forgetServers(...urls: string[]): Promise<void> {
  const sql = testSql();
  const normalised = urls.map((u) => u.replace(/\/+$/, ""));
  const rows = await sql<{ name: string }[]>`
    select name from maintenance.evolution_servers where base_url = any (${normalised}::text[]) and name <> 'default'`;
  if (!rows.length) return;
  const names = rows.map((r) => r.name);
  await sql`delete from maintenance.tenant_servers where server_id in (
    select id from maintenance.evolution_servers where name = any (${names}::text[]))`;
  for (const n of names) await sql`select maintenance.remove_evolution_server(${n})`;
}
