// Deploys that are verified: every function of this project goes through the real `supabase functions deploy
// --use-api` to the local Management API stand-in and is uploaded as exactly its module graph + deno.json; and the
// check fails, naming the function and the files, on fixture projects whose deploy would not be that. No database.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { checkUpload, deployCheck, type FunctionExpectation, parseFunctionsConfig } from "../dev/deploy_check.ts";
import { type DeployUpload, startManagementApi } from "../dev/management_api.ts";
import { ROOT } from "../dev/paths.ts";

const quiet = { log: () => {} };

Deno.test("every function in supabase/functions deploys with --use-api as exactly its module graph + deno.json", async () => {
  const slugs: string[] = [];
  for await (const e of Deno.readDir(join(ROOT, "supabase", "functions"))) if (e.isDirectory) slugs.push(e.name);
  slugs.sort();
  assert.ok(slugs.length > 0);
  const config = parseFunctionsConfig(await Deno.readTextFile(join(ROOT, "supabase", "config.toml")));
  const r = await deployCheck(quiet);
  assert.deepEqual(r.problems, [], r.cli.output);
  assert.equal(r.ok, true);
  assert.equal(r.cli.code, 0);
  assert.deepEqual(r.functions.map((f) => f.slug), slugs);
  assert.ok(r.durationMs < 30_000, `the check took ${r.durationMs} ms`);
  for (const slug of slugs) {
    const uploads = r.api.uploads.filter((u) => u.slug === slug);
    assert.equal(uploads.length, 1, slug);
    const [up] = uploads;
    assert.equal(up.metadata.entrypoint_path, `supabase/functions/${slug}/index.ts`);
    assert.equal(up.metadata.import_map_path, "deno.json");
    assert.equal(up.metadata.verify_jwt, config[slug].verify_jwt, slug);
    const names = up.files.map((f) => f.name);
    assert.ok(names.includes("deno.json"), slug);
    // Every relative import of the entrypoint is there (an independent look at the first level of the graph).
    const source = await Deno.readTextFile(join(ROOT, up.metadata.entrypoint_path));
    for (const [, spec] of source.matchAll(/from "(\.[^"]+)"/g)) {
      assert.ok(names.includes(join(`supabase/functions/${slug}`, spec)), `${slug} uploads ${spec}`);
    }
    assert.ok(!names.some((n) => n.startsWith("node_modules/") || n.startsWith("tests/")), slug);
    assert.equal(r.functions.find((f) => f.slug === slug)?.files, names.length);
  }
  // Several functions: each uploaded with bundleOnly=true, then activated together by one bulk update.
  assert.ok(r.api.uploads.every((u) => u.bundleOnly));
  assert.equal(r.api.bulkUpdates.length, 1);
  assert.deepEqual(r.api.bulkUpdates[0].map((e) => e.slug).sort(), slugs);
  assert.deepEqual([...r.api.functions.keys()].sort(), slugs);
});

// A tiny project: one function `hello` importing a bare specifier through deno.json and a relative module.
const BASE: Record<string, string> = {
  "deno.json": `{ "imports": { "greet": "./lib/greet.ts" } }\n`,
  "lib/greet.ts": `export function greet(name: string): string {\n  return "hello " + name;\n}\n`,
  "supabase/config.toml": `project_id = "fixture"

[functions.hello]
enabled = true
verify_jwt = false
import_map = "../deno.json"
entrypoint = "./functions/hello/index.ts"
`,
  "supabase/functions/hello/index.ts": `import { greet } from "greet";
import { who } from "./who.ts";

Deno.serve(() => new Response(greet(who)));
`,
  "supabase/functions/hello/who.ts": `export const who = "world";\n`,
};

/** Writes BASE with `changes` (null deletes a file) to <tmp>/project, runs the check, removes the folder. */
async function checkFixture(
  changes: Record<string, string | null>,
  outside?: string,
): Promise<Awaited<ReturnType<typeof deployCheck>>> {
  const tmp = await Deno.makeTempDir({ prefix: "deploy_fixture_" });
  try {
    const root = join(tmp, "project");
    for (const [path, text] of Object.entries({ ...BASE, ...changes })) {
      if (text === null) continue;
      await Deno.mkdir(dirname(join(root, path)), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
    }
    if (outside !== undefined) await Deno.writeTextFile(join(tmp, "outside.ts"), outside);
    return await deployCheck({ ...quiet, root });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

const ENTRY = BASE["supabase/functions/hello/index.ts"];

Deno.test("fixture: the tiny project itself passes (so each failure below comes from its one change)", async () => {
  const r = await checkFixture({});
  assert.deepEqual(r.problems, [], r.cli.output);
  assert.deepEqual(r.functions, [{ slug: "hello", files: 4, bytes: r.functions[0].bytes, problems: [] }]);
  // One function: a plain deploy, no bundleOnly, no bulk update.
  assert.equal(r.api.uploads[0].bundleOnly, false);
  assert.equal(r.api.bulkUpdates.length, 0);
});

Deno.test("fails: config.toml without import_map, so the CLI uploads no import map", async () => {
  const r = await checkFixture({
    "supabase/config.toml": BASE["supabase/config.toml"].replace(`import_map = "../deno.json"\n`, ""),
  });
  assert.equal(r.ok, false);
  assert.equal(r.cli.code, 0, "the CLI itself does not complain");
  assert.deepEqual(r.problems, [
    `hello: metadata import_map_path is "", expected "deno.json" ` +
    `(import_map in [functions.hello] of supabase/config.toml, relative to supabase/)`,
    // Without the import map the CLI cannot map "greet" either, so lib/greet.ts is not uploaded.
    "hello: missing from the upload: deno.json, lib/greet.ts",
  ]);
});

Deno.test("fails: no deno.json at all, so the bare specifier is unresolvable", async () => {
  const r = await checkFixture({
    "deno.json": null,
    "supabase/config.toml": BASE["supabase/config.toml"].replace(`import_map = "../deno.json"\n`, ""),
  });
  assert.equal(r.ok, false);
  assert.equal(r.problems[0], "the project's import map deno.json does not exist");
  assert.match(
    r.problems[1],
    /^hello: module graph: unresolvable import "greet" in supabase\/functions\/hello\/index\.ts: /,
  );
  assert.ok(r.problems.includes("hello: missing from the upload: deno.json"), r.problems.join("\n"));
});

Deno.test("fails: an import above the project root, which the CLI skips with only a warning", async () => {
  const r = await checkFixture(
    { "supabase/functions/hello/index.ts": `import { up } from "../../../../outside.ts";\n${ENTRY}` },
    `export const up = 1;\n`,
  );
  assert.equal(r.ok, false);
  assert.equal(r.cli.code, 0);
  assert.match(r.cli.output, /WARN: Skipping import path outside source root: .*outside\.ts/);
  assert.deepEqual(r.problems, [
    "hello: missing from the upload: ../outside.ts (outside the project root: the CLI skips such imports with a warning)",
  ]);
});

Deno.test("fails: a file uploaded but not in the module graph (a commented-out import)", async () => {
  const r = await checkFixture({
    "supabase/functions/hello/index.ts": `// import { old } from "./legacy.ts";\n${ENTRY}`,
    "supabase/functions/hello/legacy.ts": `export const old = 1;\n`,
  });
  assert.equal(r.ok, false);
  assert.deepEqual(r.problems, ["hello: uploaded but not in the module graph: supabase/functions/hello/legacy.ts"]);
});

Deno.test("fails: an import of a file that does not exist (the CLI only warns)", async () => {
  const r = await checkFixture({ "supabase/functions/hello/index.ts": `import "./gone.ts";\n${ENTRY}` });
  assert.equal(r.ok, false);
  assert.equal(r.cli.code, 0);
  assert.match(r.cli.output, /WARN: failed to read file: open supabase\/functions\/hello\/gone\.ts/);
  assert.equal(r.problems.length, 1, r.problems.join("\n"));
  assert.match(r.problems[0], /^hello: module graph: supabase\/functions\/hello\/gone\.ts: Module not found/);
});

Deno.test("fails: the CLI itself fails (exit code and its output in the message)", async () => {
  const r = await checkFixture({
    "supabase/config.toml": BASE["supabase/config.toml"].replace("verify_jwt = false", `verify_jwt = "no"`),
  });
  assert.equal(r.ok, false);
  assert.equal(r.cli.code, 1);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0], /^supabase functions deploy --use-api exited with code 1:\n/);
  assert.match(r.problems[0], /failed to read config/);
  assert.equal(r.api.uploads.length, 0);
});

Deno.test("checkUpload: wrong metadata, duplicates and changed content are each named", () => {
  const exp: FunctionExpectation = {
    slug: "fn",
    entrypoint: "supabase/functions/fn/index.ts",
    importMap: "deno.json",
    verifyJwt: false,
    staticPatterns: [],
    files: ["deno.json", "supabase/functions/fn/index.ts"],
    hashes: new Map([["deno.json", "aa"], ["supabase/functions/fn/index.ts", "bb"]]),
    graphErrors: [],
  };
  const file = (name: string, sha256: string) => ({ name, size: 1, sha256, content: new Uint8Array(1) });
  const good: DeployUpload = {
    slug: "fn",
    bundleOnly: false,
    id: "1",
    metadata: {
      name: "fn",
      entrypoint_path: "supabase/functions/fn/index.ts",
      import_map_path: "deno.json",
      static_patterns: [],
      verify_jwt: false,
    },
    files: [file("deno.json", "aa"), file("./supabase/functions/fn/index.ts", "bb")],
  };
  assert.deepEqual(checkUpload(exp, [good]), []);
  assert.deepEqual(checkUpload(exp, []), ["fn: not deployed (no upload of it reached the Management API)"]);
  const bad: DeployUpload = {
    ...good,
    metadata: { name: "other", entrypoint_path: "supabase/functions/fn/main.ts", verify_jwt: true },
    files: [file("deno.json", "cc"), file("supabase/functions/fn/index.ts", "bb")],
  };
  assert.deepEqual(checkUpload(exp, [good, bad]), [
    "fn: uploaded 2 times",
    `fn: metadata name is "other", expected "fn"`,
    `fn: metadata entrypoint_path is "supabase/functions/fn/main.ts", expected "supabase/functions/fn/index.ts"`,
    `fn: metadata import_map_path is "", expected "deno.json" ` +
    `(import_map in [functions.fn] of supabase/config.toml, relative to supabase/)`,
    "fn: metadata verify_jwt is true, expected false " +
    "(verify_jwt in [functions.fn] of supabase/config.toml, or --no-verify-jwt)",
    "fn: uploaded deno.json differs from the file on disk",
  ]);
});

Deno.test("parseFunctionsConfig reads the [functions.*] tables and nothing else", () => {
  const config = parseFunctionsConfig(`[api]
port = 54321
[functions.a] # a comment
verify_jwt = true
import_map = "../deno.json" # another
static_files = [
  "./functions/a/*.html", # comment inside
  './functions/a/x#y.txt',
]
[functions."b-c"]
enabled = false
[functions.a.secrets]
verify_jwt = false
`);
  assert.deepEqual(config, {
    a: {
      verify_jwt: true,
      import_map: "../deno.json",
      static_files: ["./functions/a/*.html", "./functions/a/x#y.txt"],
    },
    "b-c": { enabled: false },
  });
});

Deno.test("the Management API stand-in is strict: 401, 404, 400, and a bundle is listed only once activated", async () => {
  const ref = "abcdefghijklmnopqrst";
  const token = `sbp_${"0123456789abcdef".repeat(3).slice(0, 40)}`;
  const api = startManagementApi({ projectRef: ref, accessToken: token });
  try {
    const call = (path: string, init: RequestInit & { token?: string | null } = {}) =>
      fetch(`${api.url}${path}`, {
        ...init,
        headers: {
          ...(init.token === null ? {} : { authorization: `Bearer ${init.token ?? token}` }),
          ...init.headers as Record<string, string>,
        },
      });
    const status = async (res: Promise<Response>) => {
      const r = await res;
      await r.body?.cancel();
      return r.status;
    };
    const form = (meta: unknown, files: Record<string, string>) => {
      const fd = new FormData();
      if (meta !== undefined) fd.append("metadata", typeof meta === "string" ? meta : JSON.stringify(meta));
      for (const [name, text] of Object.entries(files)) fd.append("file", new File([text], name));
      return fd;
    };
    const meta = { entrypoint_path: "supabase/functions/f/index.ts", import_map_path: "deno.json", name: "f" };
    const files = { "deno.json": "{}", "supabase/functions/f/index.ts": "Deno.serve(() => new Response());" };
    const deploy = (fd: FormData, query = "?slug=f", extra: { token?: string | null } = {}) =>
      call(`/v1/projects/${ref}/functions/deploy${query}`, { method: "POST", body: fd, ...extra });

    assert.equal(await status(call(`/v1/projects/${ref}/functions`, { token: null })), 401);
    assert.equal(await status(call(`/v1/projects/${ref}/functions`, { token: "sbp_short" })), 401);
    assert.equal(await status(call(`/v1/projects/${ref}/functions`, { token: `sbp_${"f".repeat(40)}` })), 401);
    assert.equal(await status(call(`/v1/projects/zyxwvutsrqponmlkjihg/functions`)), 404);
    assert.equal(await status(call(`/v1/projects/${ref}`)), 404);
    assert.equal(
      await status(call(`/v1/projects/${ref}/functions/deploy?slug=f`, {
        method: "POST",
        headers: { "content-type": "multipart/form-data; boundary=xyz" },
        body: "not a multipart body",
      })),
      400,
    );
    assert.equal(await status(deploy(form(undefined, files))), 400, "no metadata");
    assert.equal(await status(deploy(form("{not json", files))), 400, "metadata not JSON");
    assert.equal(await status(deploy(form({ name: "f" }, files))), 400, "no entrypoint_path");
    assert.equal(await status(deploy(form(meta, { "deno.json": "{}" }))), 400, "entrypoint not uploaded");
    assert.equal(await status(deploy(form(meta, { ...files, "../x.ts": "" }))), 400, "a name above the root");
    assert.equal(await status(deploy(form(meta, files), "")), 400, "no slug");
    assert.equal(api.uploads.length, 0);

    const res = await deploy(form(meta, files), "?slug=f&bundleOnly=true");
    assert.equal(res.status, 201);
    const body = await res.json();
    assert.equal(body.slug, "f");
    assert.equal(api.uploads.length, 1);
    assert.deepEqual(api.uploads[0].files.map((f) => f.name), Object.keys(files));
    assert.deepEqual(await (await call(`/v1/projects/${ref}/functions`)).json(), [], "bundleOnly: not active yet");
    const put = (entries: unknown) =>
      call(`/v1/projects/${ref}/functions`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(entries),
      });
    assert.equal(await status(put([{ ...body, id: "never-uploaded" }])), 400);
    assert.equal(await status(put({ not: "an array" })), 400);
    assert.equal(await status(put([body])), 200);
    const listed = await (await call(`/v1/projects/${ref}/functions`)).json();
    assert.deepEqual(listed.map((f: { slug: string; status: string }) => [f.slug, f.status]), [["f", "ACTIVE"]]);
    assert.ok(api.requests.every((r) => r.path.startsWith(`/v1/projects/`)));
  } finally {
    await api.close();
  }
});
