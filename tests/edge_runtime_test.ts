/**
 * @module
 * dev/edge_runtime.ts: the functions type-check and boot under the edge runtime's Deno 2.1.4, and an API that only
 * newer Deno has is caught. The fixture API is `RegExp.escape` (ES2025): Deno 2.9.6 (TypeScript 6, V8 15) has its
 * type and its implementation, Deno 2.1.4 (TypeScript 5.6, V8 13.0) has neither, so it fails both `deno check`
 * and, called at the top of an entrypoint, the boot. Each failing case is also run under the project's Deno, where
 * it must pass: the failure comes from the version, not from a broken fixture.
 */
import assert from "node:assert/strict";
import {
  bootRouter,
  checkEntrypoints,
  EDGE_DENO_VERSION,
  ensureEdgeDeno,
  functionNames,
  profileOf,
  smokeRun,
} from "../dev/edge_runtime.ts";
import { ROOT } from "../dev/paths.ts";
import { stack, testSql } from "./_helpers.ts";

const PROJECT_DENO = `${ROOT}/node_modules/.bin/deno`;

/** An entrypoint that uses the project's import map (zod) and, when `newApi`, RegExp.escape. */
function entrypoint(newApi: boolean): string {
  const escape = newApi ? "RegExp.escape(name)" : 'name.replace(/[.*+?^${}()|[\\]\\\\]/g, "\\\\$&")';
  return `import { z } from "zod";
const name = z.string().min(1).parse("a.b");
const pattern = new RegExp(\`^\${${escape}}$\`);
Deno.serve((req) => new Response(String(pattern.test(new URL(req.url).pathname.split("/").at(-1) ?? ""))));
`;
}

async function writeFunction(root: string, name: string, source: string) {
  await Deno.mkdir(`${root}/${name}`, { recursive: true });
  await Deno.writeTextFile(`${root}/${name}/index.ts`, source);
}

Deno.test("ensureEdgeDeno() gives a Deno 2.1.4 binary", async () => {
  const bin = await ensureEdgeDeno();
  const out = await new Deno.Command(bin, { args: ["--version"], stdout: "piped" }).output();
  assert.match(new TextDecoder().decode(out.stdout), new RegExp(`^deno ${EDGE_DENO_VERSION.replaceAll(".", "\\.")} `));
});

Deno.test("the project's function entrypoints type-check under Deno 2.1.4", async () => {
  const result = await checkEntrypoints();
  assert.ok(result.ok, result.output);
  const names = await functionNames();
  assert.ok(names.length >= 8, `function folders found: ${names.join(", ")}`);
  assert.deepEqual(result.files, names.map((n) => `${ROOT}/supabase/functions/${n}/index.ts`));
});

Deno.test("checkEntrypoints() reports an API that Deno 2.1.4 lacks and Deno 2.9 has", async () => {
  const root = await Deno.makeTempDir({ prefix: "edge-check-" });
  try {
    await writeFunction(root, "plain", entrypoint(false));
    await writeFunction(root, "new-api", entrypoint(true));
    await Deno.mkdir(`${root}/_shared`); // not a function: skipped like on Supabase
    await Deno.writeTextFile(`${root}/_shared/index.ts`, "export const broken: number = 'not a number';\n");

    // the project's Deno first: they pass there (and its check cache, shared with 2.1.4, must not count for 2.1.4)
    const project = await checkEntrypoints({ root, deno: PROJECT_DENO });
    assert.ok(project.ok, project.output);

    const edge = await checkEntrypoints({ root });
    assert.deepEqual(edge.files, [`${root}/new-api/index.ts`, `${root}/plain/index.ts`]);
    assert.equal(edge.ok, false, edge.output);
    assert.match(edge.output, /TS2339 \[ERROR\]: Property 'escape' does not exist on type 'RegExpConstructor'/);
    assert.match(edge.output, /new-api\/index\.ts/);
    assert.doesNotMatch(edge.output, /plain\/index\.ts|_shared/);

    // the plain one (zod through the project's import map) passes under 2.1.4
    const plain = await checkEntrypoints({ files: [`${root}/plain/index.ts`] });
    assert.ok(plain.ok, plain.output);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a function that throws at boot under Deno 2.1.4 is reported as a boot error", async () => {
  // the project's router, copied as is beside a functions folder of fixtures (it serves ../supabase/functions/)
  const dir = await Deno.makeTempDir({ prefix: "edge-boot-" });
  try {
    await Deno.mkdir(`${dir}/dev`);
    for (const f of ["functions_router.ts", "paths.ts"]) await Deno.copyFile(`${ROOT}/dev/${f}`, `${dir}/dev/${f}`);
    const functions = `${dir}/supabase/functions`;
    await writeFunction(functions, "plain", entrypoint(false));
    await writeFunction(functions, "new-api", entrypoint(true));
    const script = `${dir}/dev/functions_router.ts`;

    const edge = await bootRouter({ script });
    try {
      assert.deepEqual(edge.problems, ["new-api: boot error: TypeError: RegExp.escape is not a function"]);
      assert.deepEqual(edge.health?.functions, ["plain"]);
      const res = await fetch(`${edge.url}/functions/v1/new-api`);
      assert.equal(res.status, 503);
      assert.equal((await res.json()).code, "BOOT_ERROR");
      const plain = await fetch(`${edge.url}/functions/v1/plain/a.b`);
      assert.equal(await plain.text(), "true");
    } finally {
      await edge.stop();
    }

    const project = await bootRouter({ script, deno: PROJECT_DENO });
    try {
      assert.deepEqual(project.problems, []);
      assert.deepEqual(project.health?.functions, ["new-api", "plain"]);
      const res = await fetch(`${project.url}/functions/v1/new-api/a.b`);
      assert.equal(await res.text(), "true");
    } finally {
      await project.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smokeRun() boots every function under Deno 2.1.4 and runs each scheduled job of cron.job once", async () => {
  const jobs = await testSql()<{ jobname: string }[]>`select jobname from cron.job where jobname like 'canais-%'`;
  assert.ok(jobs.length >= 5, "the stack has its canais-* pg_cron jobs");
  const result = await smokeRun(stack());
  assert.deepEqual(result.problems, []);
  for (const { jobname } of jobs) {
    const job = jobname.replace(/^canais-/, "");
    assert.ok(result.lines.some((l) => l.startsWith(`ok   job ${job} `)), `${job} ran: ${result.lines.join("\n")}`);
  }
  const [run] = await testSql()`
    select status from maintenance.job_runs where job = 'health-check' and trigger = 'test'
    order by started_at desc limit 1`;
  assert.notEqual(run?.status, "error");
});

Deno.test("smokeRun() fails when a job's run status is error (functions booted without their database)", async () => {
  const info = stack();
  const profile = {
    ...profileOf(info),
    functionsEnv: { SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:1/postgres" },
  };
  const result = await smokeRun(info, { profile });
  assert.equal(result.ok, false);
  assert.match(result.problems.join("\n"), /^job health-check: run status error: .*database is unavailable/m);
  assert.match(result.problems.join("\n"), /^whatsapp-ops POST \/status: HTTP 500/m);
});
