/**
 * The local stack, without Docker, shaped like a Supabase project: a Postgres 15 cluster in `.local/` with the real
 * pg_cron, pg_net and supabase_vault (dev/extensions.ts builds the last two from pinned sources), Supabase's role
 * model (`supabase_admin` is the superuser that creates extensions; `postgres` is demoted and granted what Supabase
 * grants it, from Supabase's own set-up SQL), migrations through the real Supabase CLI as `postgres`, the functions
 * served by Deno with the environment the platform gives them, and the Evolution simulator. `start` is idempotent;
 * `stop` leaves data in place; `status --json` says what is up.
 *
 *   deno run -A dev/stack.ts start [--fresh]|stop|status [--json]   (dev profile: the fixed ports of the README)
 *   CANAIS_PROFILE=test CANAIS_PORT_BASE=56000 …                   (throwaway stacks on other ports)
 */
import postgres from "postgres";
import { ROOT } from "./paths.ts";
import { ROLES_DIR } from "./extensions.ts";
import { exists, run } from "./sh.ts";
import { findJob, JOBS, summaryLine } from "../shared/jobs/mod.ts";
import type { JobDefinition } from "../shared/jobs/runner.ts";
import { isSlug, WEBHOOK_TOKEN_HEADER, webhookToken, webhookUrl } from "../shared/naming.ts";

export interface Profile {
  name: string;
  dir: string;
  dbPort: number;
  functionsPort: number;
  evolutionPort: number;
  /** Postgres with fsync and synchronous commit on, as on Supabase (default off: faster dev and test stacks). */
  durable?: boolean;
  /** Extra environment for the functions (tests point notifiers at local receivers). */
  functionsEnv?: Record<string, string>;
}

export interface StackInfo {
  profile: string;
  /** The database as the functions and migrations see it: the non-superuser `postgres`. */
  dbUrl: string;
  /** The platform's superuser (extensions, pgTAP): never used by the bundle itself. */
  adminDbUrl: string;
  functionsUrl: string;
  evolutionUrl: string;
  /** The `default` secret key of `SUPABASE_SECRET_KEYS` (what the CLI and the tests present). */
  secretKey: string;
  /** The `cron` secret key: stored in Vault as `secret_key`, presented by the scheduled calls. */
  cronSecretKey: string;
  publishableKey: string;
  evolutionApiKey: string;
  webhookSecret: string;
  webhookBaseUrl: string;
  dataDir: string;
  logs: Record<string, string>;
}

const PG_BIN = "/usr/lib/postgresql/15/bin";
const PIECES = ["functions", "evolution"] as const;
type Piece = typeof PIECES[number];

/** The profile from the environment: `dev` (default) or a named one with ports from CANAIS_PORT_BASE. */
export function profileFromEnv(env = Deno.env.toObject()): Profile {
  const name = env.CANAIS_PROFILE ?? "dev";
  if (name === "dev") {
    return { name, dir: `${ROOT}/.local/dev`, dbPort: 54322, functionsPort: 54321, evolutionPort: 8080 };
  }
  const base = Number(env.CANAIS_PORT_BASE ?? "55320");
  return {
    name,
    dir: `${ROOT}/.local/${name}-${base}`,
    dbPort: base + 2,
    functionsPort: base + 1,
    evolutionPort: base + 3,
    // `npm run bench -- --durable` sets it: Postgres keeps fsync and synchronous_commit on
    durable: env.CANAIS_DURABLE === "1",
  };
}

function randomKey(prefix: string, bytes = 24): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return prefix + btoa(String.fromCharCode(...b)).replace(/[+/=]/g, (c) => ({ "+": "-", "/": "_", "=": "" }[c]!));
}

const isRoot = () => Deno.uid() === 0;

/** Runs a Postgres binary as the `postgres` user when we are root (initdb and postgres refuse root). */
function pgCmd(bin: string, args: string[]) {
  return isRoot()
    ? run("runuser", ["-u", "postgres", "--", `${PG_BIN}/${bin}`, ...args])
    : run(`${PG_BIN}/${bin}`, args);
}

function portFree(port: number): boolean {
  try {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    l.close();
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function readPid(file: string): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(file)).trim());
    return pid > 0 && pidAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

export function stackInfo(p: Profile, keys: Record<string, string>): StackInfo {
  const functionsUrl = `http://127.0.0.1:${p.functionsPort}/functions/v1`;
  return {
    profile: p.name,
    dbUrl: `postgresql://postgres:postgres@127.0.0.1:${p.dbPort}/postgres`,
    adminDbUrl: `postgresql://supabase_admin:postgres@127.0.0.1:${p.dbPort}/postgres`,
    functionsUrl,
    evolutionUrl: Deno.env.get("EVOLUTION_API_URL") ?? `http://127.0.0.1:${p.evolutionPort}`,
    secretKey: keys.secretKey,
    cronSecretKey: keys.cronSecretKey,
    publishableKey: keys.publishableKey,
    evolutionApiKey: Deno.env.get("EVOLUTION_API_URL") ? Deno.env.get("EVOLUTION_API_KEY") ?? "" : keys.evolutionApiKey,
    webhookSecret: keys.webhookSecret,
    webhookBaseUrl: `${functionsUrl}/whatsapp-webhook`,
    dataDir: p.dir,
    logs: {
      postgres: `${p.dir}/logs/postgres.log`,
      functions: `${p.dir}/logs/functions.log`,
      evolution: `${p.dir}/logs/evolution.log`,
    },
  };
}

async function loadKeys(p: Profile): Promise<Record<string, string>> {
  const file = `${p.dir}/keys.json`;
  const kept: Record<string, string> = (await exists(file)) ? JSON.parse(await Deno.readTextFile(file)) : {};
  const keys = {
    secretKey: randomKey("sb_secret_"),
    cronSecretKey: randomKey("sb_secret_"),
    publishableKey: randomKey("sb_publishable_"),
    evolutionApiKey: randomKey("evo_"),
    webhookSecret: randomKey("whsec_", 32),
    ...kept,
  };
  if (Object.keys(keys).length !== Object.keys(kept).length) {
    await Deno.writeTextFile(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  }
  return keys;
}

/** Lets the `postgres` user reach a folder under a root-only path (e.g. a mktemp clone). */
async function ensureTraversable(dir: string) {
  if (!isRoot()) return;
  const parts = dir.split("/").filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const d = "/" + parts.slice(0, i).join("/");
    const st = await Deno.stat(d);
    if (((st.mode ?? 0) & 0o001) === 0) await Deno.chmod(d, (st.mode ?? 0o700) & 0o7777 | 0o001);
  }
}

/**
 * Vault's root key, as the platform keeps it outside the database: a per-stack key file and the `getkey` script
 * supabase_vault runs at start-up (`vault.getkey_script`) to read it. Both belong to the server's user alone.
 */
async function ensureVaultKey(p: Profile): Promise<string> {
  const dir = `${p.dir}/vault`;
  const script = `${dir}/getkey`;
  if (await exists(script)) return script;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const key = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeTextFile(`${dir}/root.key`, key + "\n", { mode: 0o600 });
  await Deno.writeTextFile(script, `#!/bin/sh\nexec cat '${dir}/root.key'\n`, { mode: 0o700 });
  if (isRoot()) await run("chown", ["-R", "postgres:postgres", dir]);
  return script;
}

function pgCtl(args: string[]) {
  return new Deno.Command(isRoot() ? "runuser" : `${PG_BIN}/pg_ctl`, {
    args: isRoot() ? ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, ...args] : args,
    stdout: "null",
    stderr: "null",
  }).output();
}

/** The installed server binaries' version (`15.20`), to tell a cluster still running older ones after an upgrade. */
async function installedVersion(): Promise<string> {
  return (await run(`${PG_BIN}/postgres`, ["--version"])).trim().split(/\s+/).pop() ?? "";
}

async function runningVersion(dbUrl: string): Promise<string | null> {
  const sql = postgres(dbUrl, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    const [row] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
    return row.v.split(/\s+/)[0];
  } catch {
    return null;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function startPostgres(p: Profile, info: StackInfo, log: (s: string) => void): Promise<boolean> {
  const pgdata = `${p.dir}/pg`;
  let created = false;
  if (!(await exists(`${pgdata}/PG_VERSION`))) {
    log(`creating the Postgres cluster in ${pgdata}`);
    await Deno.mkdir(pgdata, { recursive: true });
    await ensureTraversable(pgdata);
    if (isRoot()) await run("chown", ["-R", "postgres:postgres", pgdata]);
    await Deno.chmod(pgdata, 0o700);
    // As on Supabase: the bootstrap superuser is supabase_admin; `postgres` is created (and demoted) afterwards.
    // Loopback connections are trusted, as in Supabase's own pg_hba.conf.
    await pgCmd("initdb", ["-D", pgdata, "-U", "supabase_admin", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]);
    created = true;
  }
  const getkey = await ensureVaultKey(p);
  if ((await pgCtl(["status", "-D", pgdata])).code === 0) {
    // A package upgrade (postgresql-server-dev-15 pulls a newer postgresql-15) replaces the binaries under a running
    // cluster, which then fails new connections: restart one whose version is not the installed one.
    const [running, installed] = [await runningVersion(info.adminDbUrl), await installedVersion()];
    if (running === installed) return created;
    log(`Postgres runs ${running ?? "(not answering)"} but ${installed} is installed: restarting it`);
    await pgCmd("pg_ctl", ["-D", pgdata, "-m", "fast", "-w", "stop"]).catch(() => {});
  }
  if (!(portFree(p.dbPort))) throw new Error(`Cannot start Postgres as port ${p.dbPort} is already in use`);
  const logFile = `${p.dir}/logs/postgres.log`;
  if (isRoot()) await run("chown", ["postgres:postgres", `${p.dir}/logs`]).catch(() => {});
  const opts = [
    `-c port=${p.dbPort}`,
    "-c listen_addresses=127.0.0.1",
    "-c unix_socket_directories=/tmp",
    // the order of Supabase's postgresql.conf for the two it shares; Vault 0.3 loads its root key at start-up
    "-c shared_preload_libraries=pg_cron,pg_net,supabase_vault",
    `-c vault.getkey_script=${getkey}`,
    "-c cron.database_name=postgres",
    "-c max_connections=200",
    ...(p.durable ? [] : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
    "-c shared_buffers=256MB",
    "-c work_mem=32MB",
    "-c maintenance_work_mem=256MB",
    "-c max_wal_size=4GB",
    "-c log_min_messages=warning",
  ].join(" ");
  log(`starting Postgres on 127.0.0.1:${p.dbPort}`);
  await pgCmd("pg_ctl", ["-D", pgdata, "-l", logFile, "-w", "-t", "60", "-o", opts, "start"]);
  return created;
}

/** Runs SQL text through psql (a file under the stack's folder, so psql's errors name a real file). */
async function psqlText(p: Profile, dbUrl: string, name: string, text: string) {
  const file = `${p.dir}/run/${name}`;
  await Deno.writeTextFile(file, text);
  try {
    await psqlFile(dbUrl, file);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** Statements of Supabase's set-up SQL this machine cannot run, and why; each is replaced by a comment. */
const SKIPPED_STATEMENTS: [RegExp, string][] = [
  [
    /^create extension if not exists pgjwt\b.*$/im,
    "pgjwt is not packaged for Debian and nothing in the bundle uses it",
  ],
];

/**
 * A new cluster becomes what a Supabase project's database is before any migration of ours: Supabase's own role,
 * grant and extension set-up SQL (the pinned supabase/postgres files dev/extensions.ts unpacked), in the order
 * `migrations/db/migrate.sh` runs them, then the later platform grants and the extensions (dev/sql/supabase_platform.sql).
 */
async function platformSetup(p: Profile, info: StackInfo, log: (s: string) => void) {
  if (!(await exists(`${ROLES_DIR}/.canais-source`))) {
    throw new Error(
      `Cannot set up the database as Supabase's role SQL is missing from ${ROLES_DIR}: run dev/extensions.ts ensure`,
    );
  }
  log("setting up Supabase's roles (supabase_admin, a demoted postgres, anon/authenticated/service_role)");
  const postgresUrl = info.dbUrl;
  await psqlText(
    p,
    info.adminDbUrl,
    "00-create-postgres.sql",
    "create role postgres superuser login password 'postgres';\nalter database postgres owner to postgres;\n",
  );
  const db = `${ROLES_DIR}/migrations/db`;
  const sorted = async (dir: string) => {
    const names = [];
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".sql")) names.push(e.name);
    return names.sort();
  };
  // migrate.sh: the init scripts as postgres (still a superuser), then the migrations as supabase_admin
  for (const name of await sorted(`${db}/init-scripts`)) {
    let text = await Deno.readTextFile(`${db}/init-scripts/${name}`);
    for (const [re, why] of SKIPPED_STATEMENTS) text = text.replace(re, (m) => `-- skipped here (${why}): ${m}`);
    await psqlText(p, postgresUrl, name, text);
  }
  for (const name of await sorted(`${db}/migrations`)) {
    await psqlFile(info.adminDbUrl, `${db}/migrations/${name}`);
  }
  await psqlFile(info.adminDbUrl, `${ROOT}/dev/sql/supabase_platform.sql`);
  await psqlFile(
    info.adminDbUrl,
    `${ROLES_DIR}/ansible/files/postgresql_extension_custom_scripts/pg_cron/after-create.sql`,
  );
}

async function psqlFile(dbUrl: string, file: string) {
  await run(`${PG_BIN}/psql`, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbUrl, "-f", file]);
}

/** What the cluster is: set up as a Supabase project (a `supabase_admin` superuser, `postgres` not one), or not. */
async function clusterShape(info: StackInfo): Promise<{ supabase: boolean; postgresSuperuser: boolean | null }> {
  const sql = postgres(info.adminDbUrl.replace("supabase_admin:", "postgres:"), { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ admin: boolean; su: boolean }[]>`
      select exists (select 1 from pg_roles where rolname = 'supabase_admin' and rolsuper) as admin,
             (select rolsuper from pg_roles where rolname = 'postgres') as su`;
    return { supabase: row.admin, postgresSuperuser: row.su };
  } catch {
    return { supabase: false, postgresSuperuser: null };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function prepareDatabase(p: Profile, info: StackInfo, created: boolean, log: (s: string) => void) {
  if (created) await platformSetup(p, info, log);
  const shape = await clusterShape(info);
  if (!shape.supabase || shape.postgresSuperuser !== false) {
    throw new Error(
      `The cluster in ${p.dir}/pg was not set up as a Supabase project (${
        shape.supabase ? "postgres is a superuser" : "no supabase_admin superuser"
      }); it predates this stack: start afresh with \`npm start -- --fresh\` (its data is lost) or remove ${p.dir}`,
    );
  }
  const sql = postgres(info.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const ext = await sql<{ extname: string }[]>`
      select extname from pg_extension where extname in ('pg_cron', 'pg_net', 'supabase_vault')`;
    if (ext.length !== 3) {
      throw new Error(
        `Cannot use the cluster in ${p.dir}/pg as pg_cron, pg_net and supabase_vault are not all created`,
      );
    }
    // The Vault secrets the scheduled calls read, set as an operator sets them (as postgres, in the SQL editor):
    // the URL the functions are reached at, and the secret key named `cron`.
    const secrets = { project_url: info.functionsUrl.replace(/\/functions\/v1$/, ""), secret_key: info.cronSecretKey };
    for (const [name, value] of Object.entries(secrets)) {
      const [row] = await sql`select id, decrypted_secret from vault.decrypted_secrets where name = ${name}`;
      if (row && row.decrypted_secret === value) continue;
      if (row) await sql`select vault.update_secret(${row.id}, ${value})`;
      else await sql`select vault.create_secret(${value}, ${name}, 'set by dev/stack.ts')`;
    }
  } finally {
    await sql.end();
  }
  log("applying migrations (supabase db push, as postgres)");
  const out = await run("supabase", [
    "db",
    "push",
    "--db-url",
    `${info.dbUrl}?sslmode=disable`,
    "--yes",
    "--include-all",
  ], {
    env: { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
  });
  for (const line of out.split("\n")) if (/Applying migration/.test(line)) log(`  ${line.trim()}`);
  if (created) {
    log("loading supabase/seed.sql (new database)");
    await psqlFile(info.dbUrl, `${ROOT}/supabase/seed.sql`);
  }
}

async function startPiece(p: Profile, info: StackInfo, piece: Piece, env: Record<string, string>) {
  const pidFile = `${p.dir}/run/${piece}.pid`;
  if (await readPid(pidFile)) return false;
  const script = {
    functions: "dev/functions_router.ts",
    evolution: "dev/evolution_sim/main.ts",
  }[piece];
  const logFile = info.logs[piece];
  const deno = `${ROOT}/node_modules/.bin/deno`;
  const cmd = new Deno.Command("setsid", {
    args: [
      "bash",
      "-c",
      'echo $$ > "$0"; exec "$@" >>"$LOGFILE" 2>&1 </dev/null',
      pidFile,
      deno,
      "run",
      "-A",
      "--quiet",
      script,
    ],
    env: { ...env, LOGFILE: logFile, DENO_TLS_CA_STORE: "system", DENO_NO_UPDATE_CHECK: "1" },
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  });
  const child = cmd.spawn();
  child.unref();
  return true;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status < 500;
  } catch {
    return false;
  }
}

/**
 * The configuration variables (shared/config.ts) a stack gives its functions, named as the platform names them:
 * the keys as JSON sets of named keys (`default`, and `cron` for the scheduled calls), no singular or legacy key.
 * Tests and benches reuse them. (`SUPABASE_URL` stays unset: there is no REST or Auth server here to probe.)
 */
export function configEnv(info: StackInfo): Record<string, string> {
  return {
    SUPABASE_DB_URL: info.dbUrl,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: info.secretKey, cron: info.cronSecretKey }),
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: info.publishableKey }),
    EVOLUTION_API_URL: info.evolutionUrl,
    EVOLUTION_API_KEY: info.evolutionApiKey,
    WEBHOOK_BASE_URL: info.webhookBaseUrl,
    WEBHOOK_SECRET: info.webhookSecret,
  };
}

/** Environment of the functions process. */
export function functionsEnv(p: Profile, info: StackInfo): Record<string, string> {
  const passthrough = [
    "SLACK_WEBHOOK_URL",
    "ALERT_EMAIL_TO",
    "ALERT_EMAIL_FROM",
    "EMAIL_API_URL",
    "EMAIL_API_KEY",
    "STATUS_PAGE_TOKEN",
    "METRICS_TOKEN",
    "LOG_RETENTION_DAYS",
    "INSTANCE_PREFIX",
    "EVOLUTION_TIMEOUT_MS",
  ];
  const env: Record<string, string> = {};
  if (p.name === "dev") { for (const k of passthrough) if (Deno.env.get(k)) env[k] = Deno.env.get(k)!; }
  return {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/root",
    ...configEnv(info),
    FUNCTIONS_PORT: String(p.functionsPort),
    EVOLUTION_PORT: String(p.evolutionPort),
    ...env,
    ...(p.functionsEnv ?? {}),
  };
}

/** Starts whatever is not running; returns the stack's info. */
export async function start(p: Profile, opts: { log?: (s: string) => void; fresh?: boolean } = {}): Promise<StackInfo> {
  const log = opts.log ?? ((s: string) => console.error(`[stack:${p.name}] ${s}`));
  if (opts.fresh) await destroy(p);
  await Deno.mkdir(`${p.dir}/logs`, { recursive: true });
  await Deno.mkdir(`${p.dir}/run`, { recursive: true });
  const keys = await loadKeys(p);
  const info = stackInfo(p, keys);
  await Deno.writeTextFile(`${p.dir}/stack.json`, JSON.stringify(info, null, 2), { mode: 0o600 });
  const created = await startPostgres(p, info, log);
  await prepareDatabase(p, info, created, log);
  const env = functionsEnv(p, info);
  const useSim = !Deno.env.get("EVOLUTION_API_URL");
  let simStarted = false;
  if (useSim) {
    if (!(await readPid(`${p.dir}/run/evolution.pid`)) && !(portFree(p.evolutionPort))) {
      throw new Error(`Cannot start the Evolution simulator as port ${p.evolutionPort} is already in use`);
    }
    if (await startPiece(p, info, "evolution", env)) {
      log(`starting the Evolution simulator on :${p.evolutionPort}`);
      simStarted = true;
    }
  }
  if (!(await readPid(`${p.dir}/run/functions.pid`)) && !(portFree(p.functionsPort))) {
    throw new Error(`Cannot start the functions as port ${p.functionsPort} is already in use`);
  }
  if (await startPiece(p, info, "functions", env)) log(`starting the functions on :${p.functionsPort}`);
  await waitFor("the functions", () => httpOk(`http://127.0.0.1:${p.functionsPort}/_stack/health`), 60_000);
  if (useSim) await waitFor("the Evolution simulator", () => httpOk(`${info.evolutionUrl}/`), 60_000);
  // The simulator keeps its instances in memory: on the dev stack, give each demo integration its instance again
  // (connected, with the right webhook and token), as a real Evolution server would still have them.
  if (useSim && simStarted && p.name === "dev") await seedSimulator(info, log);
  return info;
}

async function seedSimulator(info: StackInfo, log: (s: string) => void) {
  const sql = postgres(info.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ slug: string; instance: string }[]>`
      select t.slug, ti.config ->> 'instance_name' as instance
      from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
      where ti.integration_type = 'whatsapp' and ti.is_active and t.is_active and ti.config ->> 'instance_name' is not null`;
    const list = [];
    for (const r of rows) {
      if (!isSlug(r.slug)) continue;
      list.push([r.instance, {
        state: "open",
        webhookUrl: webhookUrl(r.slug, info.webhookBaseUrl),
        webhookHeaders: { [WEBHOOK_TOKEN_HEADER]: await webhookToken(r.slug, info.webhookSecret) },
      }]);
    }
    const res = await fetch(`${info.evolutionUrl}/_control/seedInstances`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([list]),
    });
    await res.body?.cancel();
    log(`simulator: ${list.length} instance(s) of the demo tenants in place (${res.status})`);
  } finally {
    await sql.end();
  }
}

/** Stops every process the stack started; data stays. */
export async function stop(p: Profile, opts: { log?: (s: string) => void } = {}) {
  const log = opts.log ?? ((s: string) => console.error(`[stack:${p.name}] ${s}`));
  for (const piece of PIECES) {
    const pidFile = `${p.dir}/run/${piece}.pid`;
    const pid = await readPid(pidFile);
    if (!pid) continue;
    log(`stopping ${piece} (pid ${pid})`);
    try {
      Deno.kill(-pid, "SIGTERM");
    } catch {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
    }
    const until = Date.now() + 5000;
    while (pidAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    if (pidAlive(pid)) {
      try {
        Deno.kill(-pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await Deno.remove(pidFile).catch(() => {});
  }
  if (await exists(`${p.dir}/pg/postmaster.pid`)) {
    log("stopping Postgres");
    await pgCmd("pg_ctl", ["-D", `${p.dir}/pg`, "-m", "fast", "-w", "stop"]).catch((e) => log(String(e)));
  }
}

/** Stops the stack and removes its data. */
export async function destroy(p: Profile) {
  await stop(p, { log: () => {} });
  await Deno.remove(p.dir, { recursive: true }).catch(() => {});
}

/** What is up, read from pid files and ports. */
export async function status(p: Profile) {
  const keys = (await exists(`${p.dir}/keys.json`)) ? await loadKeys(p) : {} as Record<string, string>;
  const info = stackInfo(p, keys);
  let database = false;
  let pgNetWorker = false;
  let extensions: Record<string, string> = {};
  try {
    const sql = postgres(info.dbUrl, { max: 1, connect_timeout: 2, onnotice: () => {} });
    const ext = await sql<{ extname: string; extversion: string }[]>`
      select extname, extversion from pg_extension where extname in ('pg_cron', 'pg_net', 'supabase_vault')`;
    extensions = Object.fromEntries(ext.map((e) => [e.extname, e.extversion]));
    const [w] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where backend_type like 'pg_net%worker%'`;
    pgNetWorker = w.n > 0;
    await sql.end();
    database = true;
  } catch { /* down */ }
  const up = {
    database,
    functions: await httpOk(`http://127.0.0.1:${p.functionsPort}/_stack/health`),
    evolution: await httpOk(`${info.evolutionUrl}/`),
    pgNetWorker,
  };
  return {
    dbUrl: info.dbUrl,
    functionsUrl: info.functionsUrl,
    evolutionUrl: info.evolutionUrl,
    secretKey: info.secretKey ?? null,
    publishableKey: info.publishableKey ?? null,
    running: Object.values(up).every(Boolean),
    up,
    evolutionSimulated: !Deno.env.get("EVOLUTION_API_URL"),
    extensions,
    dataDir: p.dir,
    logs: info.logs,
  };
}

/**
 * Runs each scheduled job of the registry once through its function (as `npm start` does) and returns the
 * responses. `jobs` defaults to the registry; a test passes its own.
 */
export async function runScheduledJobs(info: StackInfo, jobs: readonly JobDefinition[] = JOBS) {
  const results: Record<string, unknown>[] = [];
  for (const { name: job } of jobs) {
    try {
      const res = await fetch(`${info.functionsUrl}/${job}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          apikey: info.secretKey,
          authorization: `Bearer ${info.secretKey}`,
        },
        body: JSON.stringify({ trigger: "start" }),
        signal: AbortSignal.timeout(180_000),
      });
      const body = await res.json();
      results.push(res.ok ? body : { job, status: "error", httpStatus: res.status, report: body });
    } catch (error) {
      results.push({ job, status: "error", report: { error: String(error) } });
    }
  }
  return results;
}

/** One readable line per job for `npm start` (the whole report is in maintenance.job_runs). */
export function summarize(job: string, report: unknown, jobs: readonly JobDefinition[] = JOBS): string {
  return summaryLine(findJob(job, jobs), report);
}

if (import.meta.main) {
  const [cmd, ...rest] = Deno.args;
  const p = profileFromEnv();
  const json = rest.includes("--json");
  try {
    if (cmd === "start") {
      const info = await start(p, { fresh: rest.includes("--fresh") });
      console.log("\nScheduled jobs, run once now:");
      for (const r of await runScheduledJobs(info)) {
        console.log(
          `  ${String(r.job).padEnd(16)} ${String(r.status).padEnd(10)} ${
            String(r.durationMs ?? "-").padStart(6)
          } ms  ${summarize(String(r.job), r.report)}`,
        );
      }
      console.log(`
The local stack is up (${p.name}):
  Database         ${info.dbUrl}
  Functions        ${info.functionsUrl}/<name>
  Evolution API    ${info.evolutionUrl}${Deno.env.get("EVOLUTION_API_URL") ? "" : "  (simulator)"}
  Secret key       ${info.secretKey}
  Status page      ${info.functionsUrl}/status-page?token=<secret key>   (&format=svg as on *.supabase.co, &format=json)
  Logs             ${p.dir}/logs/
Stop it with: npm stop`);
    } else if (cmd === "stop") {
      await stop(p);
      console.log("stopped; data kept in " + p.dir);
    } else if (cmd === "status") {
      const s = await status(p);
      if (json) console.log(JSON.stringify(s));
      else {
        for (const [k, v] of Object.entries(s.up)) console.log(`${k.padEnd(12)} ${v ? "up" : "down"}`);
        console.log(
          `database     ${s.dbUrl}\nfunctions    ${s.functionsUrl}\nevolution    ${s.evolutionUrl}\nsecret key   ${s.secretKey}\nlogs         ${p.dir}/logs/`,
        );
      }
    } else {
      console.error("usage: stack.ts start|stop|status [--json]");
      Deno.exit(2);
    }
  } catch (error) {
    console.error(`[stack:${p.name}] ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
