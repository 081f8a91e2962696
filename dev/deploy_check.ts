/**
 * Deploys that are verified: runs the real Supabase CLI's `supabase functions deploy --use-api` (server-side
 * bundling, no Docker: the CLI uploads the source files itself) against the local Management API stand-in of
 * dev/management_api.ts, then checks, for each function, that the files uploaded are exactly its module graph plus
 * the import map, and that the metadata names its entrypoint, `deno.json` and the verify_jwt of config.toml.
 *
 *   deno run -A dev/deploy_check.ts [--root=<project>] [--ref=<20 letters>] [--no-verify-jwt] [slug …]
 *
 * The expected files of a function are the local (`file:`) modules of `deno info --json` on its entrypoint with the
 * project's import map (npm:, jsr: and https: modules are resolved on the platform, not uploaded), plus the import
 * map; the uploaded ones are the `file` parts the CLI sent, named relative to the project root. What the CLI does,
 * and why it can differ from the module graph (a commented-out import is uploaded, an import above the project root
 * is skipped with only a warning, an import map's local targets are uploaded whole), is in dev/management_api.ts.
 *
 * @module
 */
import { isAbsolute, join, normalize, relative, resolve } from "node:path";
import { ROOT } from "./paths.ts";
import { type DeployUpload, type ManagementApi, sha256Hex, startManagementApi } from "./management_api.ts";

/** The project ref the check deploys to (any 20 lowercase letters; the stand-in serves only this one). */
export const DEFAULT_PROJECT_REF = "canaisdeploycheckref";
const SLUG_PATTERN = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** What config.toml says of one function (only the keys the deploy uses). */
export interface FunctionConfig {
  enabled?: boolean;
  verify_jwt?: boolean;
  import_map?: string;
  entrypoint?: string;
  static_files?: string[];
}

/** Options of {@link deployCheck}. */
export interface DeployCheckOptions {
  /** The project folder (with supabase/config.toml); default this project. */
  root?: string;
  /** Default {@link DEFAULT_PROJECT_REF}. */
  projectRef?: string;
  /** Pass `--no-verify-jwt` to the CLI (then every function's verify_jwt must be false). */
  noVerifyJwt?: boolean;
  /** Deploy only these functions (default: all, as the CLI finds them). */
  functions?: string[];
  /** The project's import map, relative to the root (default `deno.json`). */
  importMap?: string;
  /** The supabase CLI (default this project's node_modules/.bin/supabase). */
  cli?: string;
  /** The deno binary for `deno info` (default this project's node_modules/.bin/deno). */
  deno?: string;
  /** Give up on the CLI after this long (default 120 s). */
  timeoutMs?: number;
  /** Where the per-function lines and the summary go (default console.log). */
  log?: (line: string) => void;
}

/** What the check found for one function. */
export interface FunctionReport {
  slug: string;
  /** Files uploaded in its (last) deploy. */
  files: number;
  /** Their total size. */
  bytes: number;
  problems: string[];
}

/** The outcome of {@link deployCheck}. */
export interface DeployCheckResult {
  ok: boolean;
  functions: FunctionReport[];
  /** Every problem, each naming its function (or the CLI). */
  problems: string[];
  /** The CLI's exit code and output (stdout, then stderr). */
  cli: { code: number; output: string };
  /** The stand-in, stopped, with everything it recorded. */
  api: ManagementApi;
  durationMs: number;
}

/** What one function's deploy must look like. */
export interface FunctionExpectation {
  slug: string;
  /** Entrypoint, relative to the project root. */
  entrypoint: string;
  /** Import map the metadata must name, relative to the project root. */
  importMap: string;
  /** verify_jwt the metadata must carry (undefined: omitted). */
  verifyJwt?: boolean;
  /** static_patterns the metadata must carry, relative to the project root. */
  staticPatterns: string[];
  /** Module graph (local files, relative to the project root; `../…` when outside it) plus the import map. */
  files: string[];
  /** sha256 of each expected file that exists on disk. */
  hashes: Map<string, string>;
  /** Errors `deno info` reported in the graph (unresolvable imports, missing modules). */
  graphErrors: string[];
}

/**
 * Deploys every function of the project with the real CLI to a fresh local Management API stand-in and compares
 * what was uploaded with what should have been. Never throws for a failed check: see `ok` and `problems`.
 */
export async function deployCheck(options: DeployCheckOptions = {}): Promise<DeployCheckResult> {
  const t0 = performance.now();
  const log = options.log ?? console.log;
  const root = await Deno.realPath(options.root ?? ROOT);
  const projectRef = options.projectRef ?? DEFAULT_PROJECT_REF;
  const importMap = options.importMap ?? "deno.json";
  const problems: string[] = [];
  const token = `sbp_${randomHex(20)}`;
  const api = startManagementApi({ projectRef, accessToken: token });
  const home = await Deno.makeTempDir({ prefix: "deploy_check_home_" });
  let cli = { code: -1, output: "" };
  const reports: FunctionReport[] = [];
  try {
    const config = parseFunctionsConfig(await Deno.readTextFile(join(root, "supabase", "config.toml")));
    const slugs = options.functions ?? await functionSlugs(root, config);
    if (!await exists(join(root, importMap))) problems.push(`the project's import map ${importMap} does not exist`);
    const [expectations, run] = await Promise.all([
      Promise.all(
        slugs.filter((s) => config[s]?.enabled !== false).map((slug) =>
          expectationFor(root, slug, config[slug] ?? {}, importMap, options)
        ),
      ),
      runCli(root, api, token, options, home),
    ]);
    cli = run;
    if (cli.code !== 0) {
      const refusals = api.requests.filter((r) => r.status >= 400 && r.path !== `/v1/projects/${projectRef}`)
        .map((r) => `\n  the stand-in answered ${r.status} to ${r.method} ${r.path}: ${r.message ?? ""}`).join("");
      problems.push(`supabase functions deploy --use-api exited with code ${cli.code}:${refusals}\n${cli.output}`);
    } else {
      for (const exp of expectations) {
        const uploads = api.uploads.filter((u) => u.slug === exp.slug);
        const last = uploads.at(-1);
        const found = checkUpload(exp, uploads);
        if (last && !api.functions.has(exp.slug)) {
          found.push(
            `${exp.slug}: uploaded${
              last.bundleOnly ? " with bundleOnly=true" : ""
            } but not active on the project afterwards (no PUT /v1/projects/{ref}/functions named it)`,
          );
        }
        reports.push({
          slug: exp.slug,
          files: last?.files.length ?? 0,
          bytes: last?.files.reduce((n, f) => n + f.size, 0) ?? 0,
          problems: found,
        });
        problems.push(...found);
      }
      const expected = new Set(expectations.map((e) => e.slug));
      for (const slug of new Set(api.uploads.map((u) => u.slug))) {
        if (!expected.has(slug)) problems.push(`${slug}: deployed, but it is not a function of this project`);
      }
    }
  } catch (error) {
    problems.push(`deploy check could not run: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await api.close();
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
  const durationMs = performance.now() - t0;
  const width = Math.max(0, ...reports.map((r) => r.slug.length));
  for (const r of reports) {
    log(
      `  ${r.slug.padEnd(width)}  ${String(r.files).padStart(3)} files  ${kb(r.bytes).padStart(9)}  ${
        r.problems.length ? "FAILED" : "ok"
      }`,
    );
  }
  const version = api.requests.find((r) => r.userAgent?.startsWith("SupabaseCLI/"))?.userAgent?.slice(12) ?? "?";
  const files = reports.reduce((n, r) => n + r.files, 0);
  const bytes = reports.reduce((n, r) => n + r.bytes, 0);
  const seconds = (durationMs / 1000).toFixed(1);
  if (problems.length === 0) {
    log(
      `deploy check: ${reports.length} functions, ${files} files (${kb(bytes)}) uploaded by supabase ${version} ` +
        `functions deploy --use-api to a local Management API; each is exactly its module graph + ${importMap} ` +
        `(${seconds} s)`,
    );
  } else {
    log(`deploy check FAILED (${problems.length} problem${problems.length > 1 ? "s" : ""}, ${seconds} s):`);
    for (const p of problems) log(`  - ${p}`);
  }
  return { ok: problems.length === 0, functions: reports, problems, cli, api, durationMs };
}

/**
 * The problems of one function's deploy: none, one or several uploads compared with what is expected. Each problem
 * starts with the function's slug.
 */
export function checkUpload(exp: FunctionExpectation, uploads: DeployUpload[]): string[] {
  const p = (s: string) => `${exp.slug}: ${s}`;
  const problems = exp.graphErrors.map((e) => p(`module graph: ${e}`));
  if (uploads.length === 0) return [...problems, p("not deployed (no upload of it reached the Management API)")];
  if (uploads.length > 1) problems.push(p(`uploaded ${uploads.length} times`));
  const up = uploads.at(-1)!;
  const meta = up.metadata;
  if (meta.name !== exp.slug) problems.push(p(`metadata name is ${JSON.stringify(meta.name)}, expected "${exp.slug}"`));
  if (meta.entrypoint_path !== exp.entrypoint) {
    problems.push(p(`metadata entrypoint_path is "${meta.entrypoint_path}", expected "${exp.entrypoint}"`));
  }
  if ((meta.import_map_path ?? "") !== exp.importMap) {
    problems.push(p(
      `metadata import_map_path is "${meta.import_map_path ?? ""}", expected "${exp.importMap}" ` +
        `(import_map in [functions.${exp.slug}] of supabase/config.toml, relative to supabase/)`,
    ));
  }
  if (meta.verify_jwt !== exp.verifyJwt) {
    problems.push(p(
      `metadata verify_jwt is ${meta.verify_jwt ?? "omitted"}, expected ${exp.verifyJwt ?? "omitted"} ` +
        `(verify_jwt in [functions.${exp.slug}] of supabase/config.toml, or --no-verify-jwt)`,
    ));
  }
  const patterns = meta.static_patterns ?? [];
  if (JSON.stringify(patterns) !== JSON.stringify(exp.staticPatterns)) {
    problems.push(p(
      `metadata static_patterns is ${JSON.stringify(patterns)}, expected ${JSON.stringify(exp.staticPatterns)}`,
    ));
  }
  const statics = exp.staticPatterns.map(globToRegExp);
  const uploaded = new Map(up.files.map((f) => [normalizeUploadName(f.name), f]));
  const expected = new Set(exp.files);
  const missing = exp.files.filter((f) => !uploaded.has(f));
  const extra = [...uploaded.keys()].filter((f) => !expected.has(f) && !statics.some((re) => re.test(f))).sort();
  if (missing.length) {
    problems.push(
      p(`missing from the upload: ${
        missing.map((f) =>
          f.startsWith("../") ? `${f} (outside the project root: the CLI skips such imports with a warning)` : f
        ).join(", ")
      }`),
    );
  }
  if (extra.length) problems.push(p(`uploaded but not in the module graph: ${extra.join(", ")}`));
  for (const [name, file] of uploaded) {
    const want = exp.hashes.get(name);
    if (want !== undefined && want !== file.sha256) problems.push(p(`uploaded ${name} differs from the file on disk`));
  }
  return problems;
}

/**
 * The `[functions.<slug>]` tables of a supabase/config.toml. A small reader for what those tables hold (strings,
 * booleans, numbers, arrays of them; comments); every other table is skipped. The CLI itself refuses an invalid file.
 */
export function parseFunctionsConfig(toml: string): Record<string, FunctionConfig> {
  const out: Record<string, Record<string, unknown>> = {};
  let current: Record<string, unknown> | null = null;
  const lines = toml.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]).trim();
    if (line === "") continue;
    if (line.startsWith("[")) {
      const m = line.match(/^\[\s*functions\s*\.\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*\]$/);
      current = m ? (out[m[1] ?? m[2] ?? m[3]] = {}) : null;
      continue;
    }
    if (current === null) continue;
    const kv = line.match(/^([A-Za-z0-9_-]+)\s*=\s*(.+)$/);
    if (!kv) throw new Error(`supabase/config.toml line ${i + 1}: cannot read "${line}"`);
    let value = kv[2];
    while (value.startsWith("[") && !closesArray(value) && i + 1 < lines.length) {
      value += " " + stripComment(lines[++i]).trim();
    }
    current[kv[1]] = parseTomlValue(value, i + 1);
  }
  return out as Record<string, FunctionConfig>;
}

function stripComment(line: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#") return line.slice(0, i);
  }
  return line;
}

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0, quote = "", start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((x) => x.trim()).filter((x) => x !== "");
}

function closesArray(value: string): boolean {
  return depthOf(value) === 0;
}

function depthOf(s: string): number {
  let depth = 0, quote = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
  }
  return depth;
}

function parseTomlValue(raw: string, line: number): unknown {
  const v = raw.trim();
  if (v === "true" || v === "false") return v === "true";
  if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) return JSON.parse(v);
  if (v.startsWith("'") && v.endsWith("'") && v.length >= 2) return v.slice(1, -1);
  if (v.startsWith("[") && v.endsWith("]")) return splitTopLevel(v.slice(1, -1)).map((x) => parseTomlValue(x, line));
  if (/^[+-]?\d[\d_]*(\.\d+)?$/.test(v)) return Number(v.replaceAll("_", ""));
  throw new Error(`supabase/config.toml line ${line}: unsupported value ${v}`);
}

/** The functions the CLI deploys: folders of supabase/functions with an index.ts, plus config.toml's. */
async function functionSlugs(root: string, config: Record<string, FunctionConfig>): Promise<string[]> {
  const slugs = new Set<string>();
  try {
    for await (const e of Deno.readDir(join(root, "supabase", "functions"))) {
      if (
        e.isDirectory && SLUG_PATTERN.test(e.name) &&
        await exists(join(root, "supabase", "functions", e.name, "index.ts"))
      ) {
        slugs.add(e.name);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const slug of Object.keys(config)) slugs.add(slug);
  return [...slugs].sort();
}

async function expectationFor(
  root: string,
  slug: string,
  fc: FunctionConfig,
  importMap: string,
  options: DeployCheckOptions,
): Promise<FunctionExpectation> {
  const supabaseDir = join(root, "supabase");
  const entryAbs = fc.entrypoint
    ? resolve(supabaseDir, fc.entrypoint)
    : join(supabaseDir, "functions", slug, "index.ts");
  const importMapAbs = join(root, importMap);
  const graph = await moduleGraph(root, entryAbs, await exists(importMapAbs) ? importMapAbs : undefined, options);
  const files = [...new Set([...graph.files, normalize(importMap)])].sort();
  const hashes = new Map<string, string>();
  await Promise.all(files.map(async (f) => {
    const data = await Deno.readFile(resolve(root, f)).catch(() => undefined);
    if (data) hashes.set(f, await sha256Hex(data));
  }));
  return {
    slug,
    entrypoint: relative(root, entryAbs),
    importMap: normalize(importMap),
    verifyJwt: options.noVerifyJwt ? false : fc.verify_jwt,
    staticPatterns: (fc.static_files ?? []).map((s) => relative(root, resolve(supabaseDir, s))),
    files,
    hashes,
    graphErrors: graph.errors,
  };
}

interface InfoModule {
  specifier: string;
  error?: string;
  dependencies?: { specifier: string; code?: { error?: string }; type?: { error?: string } }[];
}

/** The local modules of an entrypoint's graph (relative to root) and the errors deno info found in it. */
async function moduleGraph(
  root: string,
  entry: string,
  importMap: string | undefined,
  options: DeployCheckOptions,
): Promise<{ files: string[]; errors: string[] }> {
  const configArgs = importMap === undefined
    ? ["--no-config"]
    : /deno\.jsonc?$/.test(importMap)
    ? ["--config", importMap]
    : ["--no-config", "--import-map", importMap];
  const out = await new Deno.Command(options.deno ?? join(ROOT, "node_modules", ".bin", "deno"), {
    args: ["info", "--json", "--no-lock", "--no-npm", "--no-remote", ...configArgs, entry],
    cwd: root,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const rel = (specifier: string) => relative(root, decodeURIComponent(new URL(specifier).pathname));
  if (!out.success) {
    return {
      files: [],
      errors: [`deno info failed on ${relative(root, entry)}: ${new TextDecoder().decode(out.stderr).trim()}`],
    };
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  const files: string[] = [];
  const errors: string[] = [];
  for (const m of info.modules) {
    if (!m.specifier.startsWith("file:")) continue;
    if (m.error) {
      errors.push(`${rel(m.specifier)}: ${m.error}`);
      continue;
    }
    files.push(rel(m.specifier));
    for (const d of m.dependencies ?? []) {
      const error = d.code?.error ?? d.type?.error;
      if (error) errors.push(`unresolvable import "${d.specifier}" in ${rel(m.specifier)}: ${error}`);
    }
  }
  return { files, errors };
}

async function runCli(
  root: string,
  api: ManagementApi,
  token: string,
  options: DeployCheckOptions,
  home: string,
): Promise<{ code: number; output: string }> {
  const profile = join(home, "profile.yaml");
  // The CLI reads a profile file as YAML; this one points every Management API call at the stand-in.
  await Deno.writeTextFile(
    profile,
    `name: deploy-check\napi_url: ${api.url}\ndashboard_url: ${api.url}/dashboard\nproject_host: localhost\n`,
  );
  const args = ["functions", "deploy", ...(options.functions ?? []), "--use-api", "--project-ref", api.projectRef];
  if (options.noVerifyJwt) args.push("--no-verify-jwt");
  args.push("--workdir", root);
  const cliPath = options.cli ?? join(ROOT, "node_modules", ".bin", "supabase");
  const out = await new Deno.Command(cliPath, {
    args,
    cwd: root,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: home,
      SUPABASE_HOME: join(home, ".supabase"),
      SUPABASE_PROFILE: profile,
      SUPABASE_ACCESS_TOKEN: token,
      SUPABASE_NO_KEYRING: "1",
      SUPABASE_TELEMETRY_DISABLED: "1",
      DO_NOT_TRACK: "1",
      SUPABASE_NO_UPDATE_NOTIFIER: "1",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 120_000),
  }).output().catch((error) => {
    throw new Error(`could not run ${cliPath} ${args.join(" ")}: ${error instanceof Error ? error.message : error}`);
  });
  const dec = new TextDecoder();
  const output = [dec.decode(out.stdout).trim(), dec.decode(out.stderr).trim()].filter(Boolean).join("\n");
  return { code: out.signal ? 128 : out.code, output: out.signal ? `${output}\n(killed by ${out.signal})` : output };
}

/** A path as the CLI sends it, normalised relative to the project root (`./a/../b.ts` → `b.ts`). */
function normalizeUploadName(name: string): string {
  return isAbsolute(name) ? name : normalize(name).replace(/^\.\//, "");
}

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[|\\{}()[\]^$+.]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(1)} kB`;
}

if (import.meta.main) {
  const arg = (name: string) => Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const functions = Deno.args.filter((a) => !a.startsWith("--"));
  const result = await deployCheck({
    root: arg("root"),
    projectRef: arg("ref"),
    noVerifyJwt: Deno.args.includes("--no-verify-jwt"),
    functions: functions.length ? functions : undefined,
  });
  Deno.exit(result.ok ? 0 : 1);
}
