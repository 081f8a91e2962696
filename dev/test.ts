/**
 * `npm test`: format check, lint, type check, then a throwaway stack on other ports (fresh data), pgTAP through
 * pg_prove, and every Deno test in tests/; the stack is stopped and removed afterwards, even on failure.
 *
 *   npm test                               everything
 *   npm test -- tests/foo_test.ts …        only these Deno test files (and no pgTAP), static checks skipped
 *   npm test -- --keep                     leave the test stack running (its info: .local/test-<base>/stack.json)
 *   CANAIS_PORT_BASE=56000 npm test        another port base, so several test stacks can run side by side
 */
import { destroy, profileFromEnv, start } from "./stack.ts";
import { ROOT } from "./paths.ts";
import { checkEntrypoints, smokeRun } from "./edge_runtime.ts";
import { deployCheck } from "./deploy_check.ts";

const args = Deno.args;
const keep = args.includes("--keep");
const files = args.filter((a) => !a.startsWith("--"));
const only = files.length > 0;
const env = Deno.env.toObject();
const profile = profileFromEnv({ ...env, CANAIS_PROFILE: env.CANAIS_PROFILE ?? "test" });
if (profile.name === "dev") throw new Error("npm test never runs on the dev stack");

const t0 = performance.now();
const step = (s: string) => console.log(`\n=== ${s} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

async function sh(cmd: string, cmdArgs: string[], extraEnv: Record<string, string> = {}): Promise<boolean> {
  const out = await new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: ROOT,
    env: extraEnv,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  return out.success;
}

const deno = `${ROOT}/node_modules/.bin/deno`;
let failed: string[] = [];

if (!only && !args.includes("--no-static")) {
  step("deno fmt --check");
  if (!(await sh(deno, ["fmt", "--check"]))) failed.push("fmt");
  step("deno lint");
  if (!(await sh(deno, ["lint"]))) failed.push("lint");
  step("deno check");
  const entry = [];
  for (const dir of ["supabase/functions", "shared", "dev", "tests", "bench"]) {
    for await (const f of walk(`${ROOT}/${dir}`)) entry.push(f);
  }
  if (!(await sh(deno, ["check", ...entry]))) failed.push("check");
  // Supabase's hosted edge runtime embeds an older Deno than the project's: an API newer than it fails here first.
  step("deno check under the edge runtime's Deno 2.1.4");
  const edge = await checkEntrypoints().catch((e) => ({ ok: false, files: [], output: String(e), durationMs: 0 }));
  console.log(edge.output || `${edge.files.length} entrypoint(s) checked in ${edge.durationMs} ms`);
  if (!edge.ok) failed.push("edge deno check");
  step("deploy check (supabase functions deploy --use-api against a local Management API)");
  if (!(await deployCheck()).ok) failed.push("deploy");
}

async function* walk(dir: string): AsyncGenerator<string> {
  try {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) yield* walk(p);
      else if (e.name.endsWith(".ts")) yield p;
    }
  } catch { /* missing folder */ }
}

if (failed.length && !args.includes("--keep-going")) {
  console.error(`\nstatic checks failed: ${failed.join(", ")}`);
  Deno.exit(1);
}

let code = 0;
try {
  step(`starting a throwaway stack (${profile.name}: db :${profile.dbPort}, functions :${profile.functionsPort})`);
  const info = await start(profile, { fresh: true });
  // Tests run each cron command themselves; pg_cron firing a job on its own schedule mid-test would only add noise
  // (an extra run taking a job's lease, an extra notification, a rollup refresh moving the watermark a test set).
  // The schedules stay defined, just paused.
  const psql = (command: string, url = info.dbUrl) =>
    sh("psql", ["-X", "-q", "-o", "/dev/null", "-d", url, "-c", command]);
  // As on Supabase, postgres may not write cron.job: schedules change through cron.alter_job.
  await psql(
    "select cron.alter_job(jobid, active := false) from cron.job where jobname like 'canais-%' or jobname = 'maintenance-rollups'",
  );
  const testEnv = {
    CANAIS_STACK_FILE: `${profile.dir}/stack.json`,
    CANAIS_PORT_BASE: String(profile.functionsPort - 1),
    DENO_TLS_CA_STORE: "system",
  };
  if (!only) {
    step("pgTAP (pg_prove supabase/tests/database)");
    // pgTAP is not a trusted extension: the platform's superuser creates it (supautils does this on Supabase).
    await psql("create extension if not exists pgtap with schema extensions", info.adminDbUrl);
    const ok = await sh("pg_prove", [
      "-h",
      "127.0.0.1",
      "-p",
      String(profile.dbPort),
      "-U",
      "postgres",
      "-d",
      "postgres",
      "--ext",
      ".sql",
      "-r",
      "supabase/tests/database",
    ]);
    if (!ok) failed.push("pgTAP");
  }
  if (!only) {
    step("smoke run under Deno 2.1.4 (boot every function, run each job once)");
    const smoke = await smokeRun(info, { profile, log: console.log })
      .catch((e) => ({ ok: false, problems: [String(e)] }));
    for (const problem of smoke.problems) console.error(`edge runtime: ${problem}`);
    if (!smoke.ok) failed.push("edge smoke run");
  }
  step("deno test");
  // The secrets scan reads what every other test left in the database and the logs, so it runs last, on its own.
  const LAST = "tests/reliability/secrets_test.ts";
  const ok = await sh(
    deno,
    ["test", "-A", "--no-check", "--trace-leaks=false", ...(only ? files : ["tests/", `--ignore=${LAST}`])],
    testEnv,
  );
  if (!ok) failed.push("deno test");
  if (!only) {
    step("deno test (secrets scan, after everything else)");
    if (!(await sh(deno, ["test", "-A", "--no-check", "--trace-leaks=false", LAST], testEnv))) failed.push("deno test");
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  failed.push("stack");
} finally {
  if (!keep) {
    step("removing the throwaway stack");
    await destroy(profile);
  }
}
failed = [...new Set(failed)];
step(failed.length ? `FAILED: ${failed.join(", ")}` : "all checks passed");
code = failed.length ? 1 : 0;
Deno.exit(code);
