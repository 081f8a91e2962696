/**
 * @module
 * The functions under the Deno that Supabase's hosted edge runtime embeds (edge runtime v1.74 = Deno 2.1.4),
 * while the project develops on a newer Deno: an API newer than the runtime (a lib type, a global, a Deno
 * namespace call) fails here before it fails in production.
 *
 * - {@link ensureEdgeDeno}: a Deno 2.1.4 binary, installed once from npm into `.local/deno-2.1.4/`.
 * - {@link checkEntrypoints}: 2.1.4's `deno check` on every `supabase/functions/<name>/index.ts`.
 * - {@link smokeRun}: the functions router (dev/functions_router.ts) under 2.1.4 on a spare port, with the
 *   environment the stack gives its functions; no boot error, every function folder served, each scheduled job
 *   (the `canais-*` pg_cron jobs) run once, the status page, whatsapp-ops and whatsapp-webhook answered once.
 *
 * 2.1.4 refuses the project's v5 deno.lock, so it always runs with `--config deno.json --no-lock` (the import map
 * and compiler options of the project, `nodeModulesDir: "none"`: npm packages come from the Deno cache, no
 * node_modules folder is written). Versions are pinned in deno.json, so no lock does not mean other versions.
 *
 *   deno run -A dev/edge_runtime.ts install        install (if needed) and print the binary's path
 *   deno run -A dev/edge_runtime.ts check          type-check every entrypoint under 2.1.4
 *   deno run -A dev/edge_runtime.ts smoke          smoke run against a running stack (CANAIS_STACK_FILE, or the
 *                                                  profile from CANAIS_PROFILE / CANAIS_PORT_BASE)
 */
import postgres from "postgres";
import { fromFileUrl, ROOT, toFileUrl } from "./paths.ts";
import { functionsEnv, type Profile, profileFromEnv, type StackInfo } from "./stack.ts";

/** The Deno version inside Supabase's hosted edge runtime (v1.74). */
export const EDGE_DENO_VERSION = "2.1.4";

/** Where {@link ensureEdgeDeno} installs it. */
export const EDGE_DENO_DIR = `${ROOT}/.local/deno-${EDGE_DENO_VERSION}`;

const FUNCTIONS_ROOT = `${ROOT}/supabase/functions`;
const ROUTER = `${ROOT}/dev/functions_router.ts`;
const CONFIG = `${ROOT}/deno.json`;
const BASE_ENV = { DENO_TLS_CA_STORE: "system", DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** The `deno` binary inside an npm install of the `deno` package (its platform package, e.g. @deno/linux-x64-glibc). */
async function findBinary(prefix: string): Promise<string | null> {
  const scoped = `${prefix}/node_modules/@deno`;
  try {
    for await (const e of Deno.readDir(scoped)) {
      const bin = `${scoped}/${e.name}/deno`;
      if (await Deno.stat(bin).then((s) => s.isFile, () => false)) return bin;
    }
  } catch { /* not installed */ }
  return null;
}

async function versionOf(bin: string): Promise<string | null> {
  try {
    const out = await new Deno.Command(bin, { args: ["--version"], env: BASE_ENV, stdout: "piped", stderr: "null" })
      .output();
    return out.success ? decode(out.stdout).match(/^deno (\S+)/)?.[1] ?? null : null;
  } catch {
    return null;
  }
}

/**
 * The path of a Deno {@link EDGE_DENO_VERSION} binary: installed once with npm (`deno@2.1.4`, scripts off, into a
 * temporary folder renamed into place, so two test runs at once do not collide), and verified by `deno --version`.
 */
export async function ensureEdgeDeno(dir = EDGE_DENO_DIR): Promise<string> {
  const have = await findBinary(dir);
  if (have && (await versionOf(have)) === EDGE_DENO_VERSION) return have;
  await Deno.mkdir(`${ROOT}/.local`, { recursive: true });
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  const out = await new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      tmp,
      "--no-save",
      "--no-package-lock",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      `deno@${EDGE_DENO_VERSION}`,
    ],
    cwd: `${ROOT}/.local`,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`Cannot install Deno ${EDGE_DENO_VERSION} as npm failed:\n${decode(out.stderr)}`);
  }
  if (have) await Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    await Deno.rename(tmp, dir);
  } catch {
    await Deno.remove(tmp, { recursive: true }).catch(() => {}); // another run put it in place first
  }
  const bin = await findBinary(dir);
  const version = bin ? await versionOf(bin) : null;
  if (!bin || version !== EDGE_DENO_VERSION) {
    throw new Error(`Cannot use Deno ${EDGE_DENO_VERSION} from ${dir} as it reports version ${version ?? "none"}`);
  }
  return bin;
}

/** The function folders under `root` that have an `index.ts` (folders starting with `_` are not functions). */
export async function functionNames(root = FUNCTIONS_ROOT): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(root)) {
    if (!e.isDirectory || e.name.startsWith("_")) continue;
    if (await Deno.stat(`${root}/${e.name}/index.ts`).then((s) => s.isFile, () => false)) names.push(e.name);
  }
  return names.sort();
}

/** What {@link checkEntrypoints} found. */
export interface CheckResult {
  ok: boolean;
  /** The files checked. */
  files: string[];
  /** deno check's output (diagnostics on failure), without colours. */
  output: string;
  durationMs: number;
}

/**
 * Runs the edge Deno's `deno check` with the project's config (import map, compiler options) on every
 * `<root>/<name>/index.ts`, or on the given `files`. `deno` picks another binary (tests compare with the
 * project's Deno).
 */
export async function checkEntrypoints(
  options: { root?: string; files?: string[]; deno?: string } = {},
): Promise<CheckResult> {
  const t0 = performance.now();
  const deno = options.deno ?? (await ensureEdgeDeno());
  const root = options.root ?? FUNCTIONS_ROOT;
  const files = options.files ?? (await functionNames(root)).map((n) => `${root}/${n}/index.ts`);
  if (files.length === 0) {
    return { ok: false, files, output: `no function entrypoint found under ${root}`, durationMs: 0 };
  }
  const out = await new Deno.Command(deno, {
    args: ["check", "--config", CONFIG, "--no-lock", "--quiet", ...files],
    cwd: ROOT,
    env: { ...BASE_ENV, RUST_BACKTRACE: "0" }, // diagnostics only, no Rust backtrace after them
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = (decode(out.stdout) + decode(out.stderr)).trim();
  return { ok: out.success, files, output, durationMs: Math.round(performance.now() - t0) };
}

function sparePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A functions router running under some Deno, on its own port. */
export interface EdgeRouter {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The `/_stack/health` answer, once it came. */
  health: { functions: string[]; bootErrors: Record<string, string> } | null;
  /** What is wrong at boot: a boot error, a function folder not served, no health answer. */
  problems: string[];
  /** Stops the router process and waits for it. */
  stop(): Promise<void>;
}

/**
 * Starts `script` (default dev/functions_router.ts, which serves the `supabase/functions/` folder beside its own
 * `dev/`) under the edge Deno on a spare port, waits for `/_stack/health` and compares it with the function
 * folders: every one must be served, none may have a boot error. Output goes to `logFile` (or is dropped).
 */
export async function bootRouter(
  options: { env?: Record<string, string>; script?: string; deno?: string; logFile?: string; timeoutMs?: number } = {},
): Promise<EdgeRouter> {
  const deno = options.deno ?? (await ensureEdgeDeno());
  const script = options.script ?? ROUTER;
  const root = fromFileUrl(new URL("../supabase/functions/", toFileUrl(script)));
  const port = sparePort();
  // through bash, as dev/stack.ts starts its pieces: stdout and stderr appended to one log file
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      'exec "$@" >>"$0" 2>&1 </dev/null',
      options.logFile ?? "/dev/null",
      deno,
      "run",
      "-A",
      "--quiet",
      "--config",
      CONFIG,
      "--no-lock",
      script,
    ],
    cwd: ROOT,
    env: { ...options.env, ...BASE_ENV, FUNCTIONS_PORT: String(port) },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const url = `http://127.0.0.1:${port}`;
  const router: EdgeRouter = {
    url,
    health: null,
    problems: [],
    async stop() {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }, 5000);
        await status;
        clearTimeout(timer);
      }
    },
  };
  const until = Date.now() + (options.timeoutMs ?? 60_000);
  while (!router.health && !exited && Date.now() < until) {
    try {
      const res = await fetch(`${url}/_stack/health`, { signal: AbortSignal.timeout(1000) });
      router.health = await res.json();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!router.health) {
    const why = exited ? `exited with code ${(await status).code}` : "did not answer /_stack/health in time";
    router.problems.push(`the functions router under Deno ${await versionOf(deno)} ${why}`);
    return router;
  }
  for (const [name, error] of Object.entries(router.health.bootErrors ?? {})) {
    router.problems.push(`${name}: boot error: ${error}`);
  }
  for (const name of await functionNames(root)) {
    if (!router.health.functions?.includes(name) && !(name in (router.health.bootErrors ?? {}))) {
      router.problems.push(`${name}: not served by the router`);
    }
  }
  return router;
}

/** What {@link smokeRun} did: one line per call, and what went wrong. */
export interface SmokeResult {
  ok: boolean;
  problems: string[];
  lines: string[];
  /** Time to boot the router under the edge Deno, and the whole run. */
  bootMs: number;
  durationMs: number;
}

/** The profile of a running stack, from its info (ports and folder; no extra `functionsEnv`). */
export function profileOf(info: StackInfo): Profile {
  return {
    name: info.profile,
    dir: info.dataDir,
    dbPort: Number(new URL(info.dbUrl).port),
    functionsPort: Number(new URL(info.functionsUrl).port),
    evolutionPort: Number(new URL(info.evolutionUrl).port || "80"),
  };
}

async function call(
  url: string,
  init: RequestInit,
): Promise<{ status: number; json: Record<string, unknown> | null; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(180_000) });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text);
  } catch { /* HTML or empty */ }
  return { status: res.status, json, text };
}

function errorCode(json: Record<string, unknown> | null): unknown {
  return (json?.error as { code?: unknown } | undefined)?.code;
}

/**
 * Boots every function under the edge Deno against a running stack and runs each scheduled job once (for real:
 * the stack's database and simulator), then stops that router. The jobs are the stack's `canais-<job>` pg_cron
 * jobs; each must answer 200 with a run status other than `error`. The status page must answer 200, whatsapp-ops
 * `POST /status` 200, and whatsapp-webhook a 401 for a tenant that does not exist (it reads the database first: a
 * database it cannot reach is a 5xx; an unknown slug is answered as a wrong token).
 */
export async function smokeRun(
  info: StackInfo,
  options: { profile?: Profile; deno?: string; log?: (line: string) => void } = {},
): Promise<SmokeResult> {
  const t0 = performance.now();
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    options.log?.(line);
  };
  const deno = options.deno ?? (await ensureEdgeDeno());
  const env = functionsEnv(options.profile ?? profileOf(info), info);
  const router = await bootRouter({
    env,
    deno,
    logFile: `${info.dataDir}/logs/functions-deno-${EDGE_DENO_VERSION}.log`,
  });
  const problems = [...router.problems];
  const bootMs = Math.round(performance.now() - t0);
  try {
    if (!router.health) return { ok: false, problems, lines, bootMs, durationMs: bootMs };
    say(`router up in ${bootMs} ms under Deno ${EDGE_DENO_VERSION}: ${router.health.functions.join(", ")}`);
    const base = `${router.url}/functions/v1`;
    const headers = { "content-type": "application/json", apikey: info.secretKey };
    const sql = postgres(info.dbUrl, { max: 1, onnotice: () => {} });
    let jobs: string[];
    try {
      const rows = await sql<{ jobname: string }[]>`
        select jobname from cron.job where jobname like 'canais-%' order by jobname`;
      jobs = rows.map((r) => r.jobname.replace(/^canais-/, ""));
    } finally {
      await sql.end();
    }
    if (jobs.length === 0) problems.push("no scheduled job: cron.job has no canais-* job");
    const probe = async (what: string, run: () => Promise<string | null>) => {
      const t = performance.now();
      let problem: string | null;
      try {
        problem = await run();
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
      const ms = Math.round(performance.now() - t);
      if (problem) problems.push(`${what}: ${problem}`);
      say(
        `${problem ? "FAIL" : "ok  "} ${what.padEnd(40)} ${String(ms).padStart(6)} ms${problem ? `  ${problem}` : ""}`,
      );
    };
    for (const job of jobs) {
      await probe(`job ${job}`, async () => {
        const r = await call(`${base}/${job}`, { method: "POST", headers, body: JSON.stringify({ trigger: "test" }) });
        if (r.status !== 200) return `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
        if (!r.json || r.json.job !== job) return `not a run response of ${job}: ${r.text.slice(0, 300)}`;
        if (r.json.status === "error") return `run status error: ${JSON.stringify(r.json.report).slice(0, 300)}`;
        return null;
      });
    }
    await probe("status-page GET", async () => {
      const r = await call(`${base}/status-page`, { headers: { apikey: info.secretKey } });
      return r.status === 200 && /<html/i.test(r.text) ? null : `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
    });
    await probe("metrics GET", async () => {
      const r = await call(`${base}/metrics`, { headers: { authorization: `Bearer ${info.secretKey}` } });
      return r.status === 200 && /^# HELP canais_/m.test(r.text) ? null : `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
    });
    await probe("whatsapp-ops POST /status", async () => {
      const r = await call(`${base}/whatsapp-ops/status`, { method: "POST", headers, body: "{}" });
      return r.status === 200 && r.json?.action === "status" ? null : `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
    });
    await probe("whatsapp-webhook unknown tenant (401, as a wrong token)", async () => {
      const r = await call(`${base}/whatsapp-webhook/api/whatsapp/webhook/edge-smoke-no-such-tenant`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      return r.status === 401 && errorCode(r.json) === "unauthorized"
        ? null
        : `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
    });
  } finally {
    await router.stop();
  }
  const durationMs = Math.round(performance.now() - t0);
  return { ok: problems.length === 0, problems, lines, bootMs, durationMs };
}

if (import.meta.main) {
  const [cmd] = Deno.args;
  if (cmd === "install") {
    console.log(await ensureEdgeDeno());
  } else if (cmd === "check") {
    const r = await checkEntrypoints();
    if (r.output) console.log(r.output);
    console.log(
      `${r.ok ? "ok" : "FAILED"}: ${r.files.length} entrypoint(s) under Deno ${EDGE_DENO_VERSION}, ${r.durationMs} ms`,
    );
    Deno.exit(r.ok ? 0 : 1);
  } else if (cmd === "smoke") {
    const file = Deno.env.get("CANAIS_STACK_FILE") ?? `${profileFromEnv().dir}/stack.json`;
    const info: StackInfo = JSON.parse(await Deno.readTextFile(file));
    const r = await smokeRun(info, { log: console.log });
    for (const p of r.problems) console.error(`problem: ${p}`);
    console.log(`${r.ok ? "ok" : "FAILED"}: smoke run under Deno ${EDGE_DENO_VERSION}, ${r.durationMs} ms`);
    Deno.exit(r.ok ? 0 : 1);
  } else {
    console.error("usage: edge_runtime.ts install|check|smoke");
    Deno.exit(2);
  }
}
