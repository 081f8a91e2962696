/**
 * A local stand-in of the Supabase Management API: only the endpoints that `supabase functions deploy --use-api`
 * calls, strict about what it accepts, recording every upload so dev/deploy_check.ts can compare it with the
 * functions' module graphs.
 *
 *   deno run -A dev/management_api.ts [--ref=<20 letters>] [--port=<n>]     (serve it by hand; logs each request)
 *
 * What Supabase CLI 2.117.0 does, as found for this module (facts, not guesses):
 *
 * - Which code runs. `node_modules/.bin/supabase` is the npm shim `supabase/dist/supabase.js`; it spawns
 *   `@supabase/cli-linux-x64/bin/supabase`, a Bun-compiled TypeScript CLI, which has a Go sidecar `supabase-go`
 *   beside it (`go version -m` on it: supabase/cli commit 21db855916f2, built 2026-09-07). In 2.117.0
 *   `functions deploy --use-api` is implemented in the TypeScript CLI itself: it still deploys with
 *   `SUPABASE_GO_BINARY=/bin/false`, and its requests carry Bun's fetch headers and a `----WebKitFormBoundary…`
 *   multipart boundary. The public supabase/cli repository I could read (mirror at 1d1e71912, June 2026) predates
 *   that: there `apps/cli/src/legacy/commands/functions/deploy/deploy.handler.ts` and `SIDE_EFFECTS.md` still proxy
 *   to Go, whose `apps/cli-go/internal/functions/deploy/deploy.go`, `apps/cli-go/pkg/function/deploy.go`,
 *   `pkg/function/deno.go`, `pkg/function/batch.go`, `internal/utils/api.go`, `internal/utils/profile.go`,
 *   `internal/utils/access_token.go` and `cmd/root.go` implement the same algorithm (same import regex, same metadata
 *   fields). The 2.117.0 specifics below were read in the JavaScript bundled inside the binary and confirmed by
 *   running the CLI against this stand-in.
 * - API host. The Management API base URL comes from the profile, not from `SUPABASE_API_URL` (ignored by `functions
 *   deploy`: with it set the CLI still went to the default host). `SUPABASE_PROFILE` (or `--profile`) names a built-in
 *   profile (`supabase`, `supabase-staging`, `supabase-local` = http://localhost:8080, `snap`) or a profile file, which
 *   is parsed as YAML whatever its extension (a TOML file fails with "While parsing config: yaml: unmarshal errors"),
 *   needs `name`, `api_url`, `dashboard_url` and `project_host`, and is refused if it has a key the CLI does not know.
 * - Auth. `SUPABASE_ACCESS_TOKEN` (else the keyring, else `~/.supabase/access-token`); it must match
 *   `^sbp_(oauth_)?[a-f0-9]{40}$` or the CLI exits 1 ("Invalid access token format. Must be like `sbp_0102...1920`.")
 *   before any request. It is sent as `Authorization: Bearer <token>`, with `User-Agent: SupabaseCLI/2.117.0`.
 *   `--project-ref` must be 20 lowercase letters.
 * - Functions. Every `supabase/functions/<slug>/index.ts` plus every `[functions.<slug>]` of supabase/config.toml
 *   (disabled ones skipped). `entrypoint`, `import_map` and `static_files` of config.toml are relative to supabase/.
 *   Import map precedence: `--import-map` > config `import_map` > the function folder's deno.json, deno.jsonc,
 *   import_map.json (deprecated) > supabase/functions/import_map.json (fallback, with a warning) > none.
 * - Requests, in order:
 *   1. `GET /v1/projects/{ref}/functions`, only when some function's verify_jwt is unknown (neither in config.toml
 *      nor `--no-verify-jwt`); it then takes verify_jwt from the deployed function. Retried on 5xx and 429.
 *   2. One function: `POST /v1/projects/{ref}/functions/deploy?slug=<slug>`, expecting 201 and a body that passes the
 *      DeployFunctionResponse schema (id, slug, name, status ACTIVE|REMOVED|THROTTLED, version; optional created_at,
 *      updated_at, verify_jwt, import_map, entrypoint_path, import_map_path, ezbr_sha256). Several functions: that
 *      POST with `&bundleOnly=true` for each (`--jobs` at a time, default 1), then one
 *      `PUT /v1/projects/{ref}/functions` with a JSON array of {id, slug, name, status, version, created_at?,
 *      verify_jwt?, import_map?, entrypoint_path?, import_map_path?, ezbr_sha256?} taken from the deploy answers,
 *      expecting 200 (`{"functions": [...]}`). A 429 is retried after Retry-After.
 *   3. After the command, `GET /v1/projects/{ref}` for its linked-project cache, unless
 *      supabase/.temp/linked-project.json exists: on 200 it writes that file into the project; other answers are
 *      ignored. (Telemetry off does not skip it.)
 * - The multipart body of a deploy: one `file` part per file (filename = the path relative to the project root, with
 *   `/`; `application/octet-stream`) and a `metadata` part, last on the wire, JSON:
 *   `{"entrypoint_path": "supabase/functions/<slug>/index.ts", "import_map_path": "deno.json" ("" when none),
 *   "static_patterns": [...static_files...], "verify_jwt": false (omitted when unknown), "name": "<slug>"}`.
 * - Which files: the import map first (and the file a deno.json's `importMap` points to), then static_files, then a
 *   walk from the entrypoint that matches
 *   `(?:import|export)\s+(?:type\s+)?(?:{[^{}]+}|.*?)\s*(?:from)?\s*['"](.*?)['"]|import\(\s*['"](.*?)['"]\)` over
 *   each file's text (so a commented-out import counts and a computed dynamic import does not), maps specifiers
 *   through the import map's imports and scopes, and skips those whose last segment has no "." or that are not
 *   relative or absolute (npm:, jsr:, https: are resolved on the platform, never uploaded). A file whose real path is
 *   outside the project root is skipped with "WARN: Skipping import path outside source root: <path>", a missing one
 *   with "WARN: failed to read file: open <path>: no such file or directory": the exit code stays 0 in both cases.
 *   Last, every local import-map target is uploaded too (a directory target: every file under it).
 * - Side effects. An update check that writes supabase/.temp/cli-latest, skipped with `SUPABASE_NO_UPDATE_NOTIFIER=1`;
 *   telemetry state under `SUPABASE_HOME` (default ~/.supabase), nothing sent with `SUPABASE_TELEMETRY_DISABLED=1` or
 *   `DO_NOT_TRACK=1`; `SUPABASE_NO_KEYRING=1` keeps it off the OS keyring.
 *
 * What the stand-in adds of its own (choices, not facts about the real API): `GET /v1/projects/{ref}` answers 404,
 * so the CLI writes no linked-project cache into the project it deploys; an upload is refused (400) when a file name
 * is absolute or has a `..` segment, when the entrypoint or the named import map is not among its files, or when a
 * PUT names a bundle that was never uploaded; with `accessToken` set only that token is accepted, else any token of
 * the right form; error bodies are `{"message": "..."}`.
 *
 * @module
 */
import { z } from "zod";

/** The access token format the CLI accepts (and so the only one this stand-in accepts). */
export const ACCESS_TOKEN_PATTERN = /^sbp_(oauth_)?[a-f0-9]{40}$/;
/** The project ref format the CLI accepts for `--project-ref`. */
export const PROJECT_REF_PATTERN = /^[a-z]{20}$/;
const SLUG_PATTERN = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** One `file` part of a deploy, as received. */
export interface UploadedFile {
  /** The part's filename: the path the CLI sends, relative to the project root. */
  name: string;
  size: number;
  /** Hex SHA-256 of the content. */
  sha256: string;
  content: Uint8Array;
}

/** The `metadata` part of a deploy. */
export interface DeployMetadata {
  entrypoint_path: string;
  import_map_path?: string;
  name?: string;
  static_patterns?: string[];
  verify_jwt?: boolean;
}

/** One accepted `POST /v1/projects/{ref}/functions/deploy`. */
export interface DeployUpload {
  slug: string;
  bundleOnly: boolean;
  /** The function's id, as answered (what a later PUT must name). */
  id: string;
  metadata: DeployMetadata;
  files: UploadedFile[];
}

/** A function as the stand-in lists it (the API's FunctionResponse). */
export interface FunctionRecord {
  id: string;
  slug: string;
  name: string;
  status: "ACTIVE" | "REMOVED" | "THROTTLED";
  version: number;
  created_at: number;
  updated_at: number;
  verify_jwt?: boolean;
  import_map?: boolean;
  entrypoint_path?: string;
  import_map_path?: string;
}

/** Every request received, with the status answered. */
export interface RecordedRequest {
  method: string;
  path: string;
  status: number;
  userAgent: string | null;
  /** The `message` of an error answer. */
  message?: string;
}

/** Options of {@link startManagementApi}. */
export interface ManagementApiOptions {
  /** The one project ref served; any other gets 404. */
  projectRef: string;
  /** If set, the only token accepted; otherwise any token of the CLI's format. */
  accessToken?: string;
  /** Port to listen on (default 0: a free one). Always on 127.0.0.1. */
  port?: number;
  /** Called for each request once answered. */
  onRequest?: (r: RecordedRequest) => void;
}

/** A running stand-in and what it recorded. */
export interface ManagementApi {
  /** Base URL, e.g. `http://127.0.0.1:43123`. */
  url: string;
  projectRef: string;
  requests: RecordedRequest[];
  uploads: DeployUpload[];
  /** Bodies of the accepted `PUT /v1/projects/{ref}/functions`. */
  bulkUpdates: BulkEntry[][];
  /** The project's functions, as `GET …/functions` lists them. */
  functions: Map<string, FunctionRecord>;
  /** Stops the server. */
  close(): Promise<void>;
}

const metadataSchema = z.object({
  entrypoint_path: z.string().min(1),
  import_map_path: z.string().optional(),
  name: z.string().optional(),
  static_patterns: z.array(z.string()).optional(),
  verify_jwt: z.boolean().optional(),
});

const bulkEntrySchema = z.object({
  id: z.string().min(1),
  slug: z.string().regex(SLUG_PATTERN),
  name: z.string(),
  status: z.enum(["ACTIVE", "REMOVED", "THROTTLED"]),
  version: z.number().int(),
  created_at: z.number().int().optional(),
  verify_jwt: z.boolean().optional(),
  import_map: z.boolean().optional(),
  entrypoint_path: z.string().optional(),
  import_map_path: z.string().optional(),
  ezbr_sha256: z.string().optional(),
});
/** One element of a bulk update body. */
export type BulkEntry = z.infer<typeof bulkEntrySchema>;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Starts the stand-in on 127.0.0.1 (a free port unless told). */
export function startManagementApi(options: ManagementApiOptions): ManagementApi {
  if (!PROJECT_REF_PATTERN.test(options.projectRef)) {
    throw new Error(`project ref must be 20 lowercase letters: ${options.projectRef}`);
  }
  const state = {
    requests: [] as RecordedRequest[],
    uploads: [] as DeployUpload[],
    bulkUpdates: [] as BulkEntry[][],
    functions: new Map<string, FunctionRecord>(),
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      let res: Response;
      let message: string | undefined;
      try {
        res = await route(req, url, options, state);
      } catch (error) {
        const status = error instanceof HttpError ? error.status : 500;
        message = error instanceof Error ? error.message : String(error);
        res = Response.json({ message }, { status });
      }
      const rec: RecordedRequest = {
        method: req.method,
        path: url.pathname + url.search,
        status: res.status,
        userAgent: req.headers.get("user-agent"),
        ...(message === undefined ? {} : { message }),
      };
      state.requests.push(rec);
      options.onRequest?.(rec);
      return res;
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    projectRef: options.projectRef,
    ...state,
    close: () => server.shutdown(),
  };
}

async function route(
  req: Request,
  url: URL,
  options: ManagementApiOptions,
  state: Omit<ManagementApi, "url" | "projectRef" | "close">,
): Promise<Response> {
  const auth = req.headers.get("authorization") ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice("Bearer ".length) : "";
  if (!ACCESS_TOKEN_PATTERN.test(token) || (options.accessToken !== undefined && token !== options.accessToken)) {
    throw new HttpError(401, "Unauthorized");
  }
  const m = url.pathname.match(/^\/v1\/projects\/([^/]+)(\/.*)?$/);
  if (!m) throw new HttpError(404, `not served by the stand-in: ${req.method} ${url.pathname}`);
  if (m[1] !== options.projectRef) throw new HttpError(404, "Project not found");
  const rest = m[2] ?? "";
  if (rest === "/functions" && req.method === "GET") {
    return Response.json([...state.functions.values()]);
  }
  if (rest === "/functions/deploy" && req.method === "POST") {
    const upload = await parseDeploy(req, url);
    // A function keeps its id across deploys; a first bundle gets a new one, which the PUT then names.
    upload.id = state.functions.get(upload.slug)?.id ?? crypto.randomUUID();
    state.uploads.push(upload);
    return Response.json(upsert(state.functions, upload, !upload.bundleOnly), { status: 201 });
  }
  if (rest === "/functions" && req.method === "PUT") {
    const body = z.array(bulkEntrySchema).min(1).safeParse(await req.json().catch(() => undefined));
    if (!body.success) throw new HttpError(400, `invalid bulk update body: ${z.prettifyError(body.error)}`);
    const bundles = body.data.map((entry) => {
      const upload = state.uploads.findLast((u) => u.id === entry.id && u.slug === entry.slug);
      if (!upload) {
        throw new HttpError(400, `bulk update names a bundle that was not uploaded: ${entry.slug} (${entry.id})`);
      }
      return upload;
    });
    state.bulkUpdates.push(body.data);
    const functions = bundles.map((upload) => upsert(state.functions, upload, true));
    return Response.json({ functions });
  }
  throw new HttpError(404, `not served by the stand-in: ${req.method} ${url.pathname}`);
}

async function parseDeploy(req: Request, url: URL): Promise<DeployUpload> {
  const slug = url.searchParams.get("slug") ?? "";
  if (!SLUG_PATTERN.test(slug)) throw new HttpError(400, `invalid or missing slug: "${slug}"`);
  const bundleOnlyParam = url.searchParams.get("bundleOnly");
  if (bundleOnlyParam !== null && bundleOnlyParam !== "true" && bundleOnlyParam !== "false") {
    throw new HttpError(400, `bundleOnly must be true or false: ${bundleOnlyParam}`);
  }
  if (!(req.headers.get("content-type") ?? "").startsWith("multipart/form-data")) {
    throw new HttpError(400, "expected a multipart/form-data body");
  }
  let form: FormData;
  try {
    form = await req.formData();
  } catch (error) {
    throw new HttpError(400, `malformed multipart body: ${error instanceof Error ? error.message : error}`);
  }
  const metaParts = form.getAll("metadata");
  if (metaParts.length !== 1 || typeof metaParts[0] !== "string") {
    throw new HttpError(400, "expected exactly one metadata field");
  }
  let metaJson: unknown;
  try {
    metaJson = JSON.parse(metaParts[0]);
  } catch {
    throw new HttpError(400, "metadata is not JSON");
  }
  const meta = metadataSchema.safeParse(metaJson);
  if (!meta.success) throw new HttpError(400, `invalid metadata: ${z.prettifyError(meta.error)}`);
  const files: UploadedFile[] = [];
  for (const part of form.getAll("file")) {
    if (typeof part === "string") throw new HttpError(400, "a file field is not a file");
    const name = part.name;
    if (name === "" || name.startsWith("/") || name.split("/").includes("..")) {
      throw new HttpError(400, `file name outside the bundle: "${name}"`);
    }
    if (files.some((f) => f.name === name)) throw new HttpError(400, `file uploaded twice: ${name}`);
    const content = new Uint8Array(await part.arrayBuffer());
    files.push({ name, size: content.byteLength, sha256: await sha256Hex(content), content });
  }
  if (files.length === 0) throw new HttpError(400, "no file uploaded");
  const names = new Set(files.map((f) => f.name));
  if (!names.has(meta.data.entrypoint_path)) {
    throw new HttpError(400, `entrypoint_path ${meta.data.entrypoint_path} is not among the uploaded files`);
  }
  const importMap = meta.data.import_map_path ?? "";
  if (importMap !== "" && !names.has(importMap)) {
    throw new HttpError(400, `import_map_path ${importMap} is not among the uploaded files`);
  }
  return { slug, bundleOnly: bundleOnlyParam === "true", id: "", metadata: meta.data, files };
}

function upsert(functions: Map<string, FunctionRecord>, upload: DeployUpload, activate: boolean): FunctionRecord {
  const now = Date.now();
  const prev = functions.get(upload.slug);
  const fn: FunctionRecord = {
    id: upload.id,
    slug: upload.slug,
    name: upload.metadata.name ?? upload.slug,
    status: "ACTIVE",
    version: (prev?.version ?? 0) + 1,
    created_at: prev?.created_at ?? now,
    updated_at: now,
    ...(upload.metadata.verify_jwt === undefined ? {} : { verify_jwt: upload.metadata.verify_jwt }),
    import_map: (upload.metadata.import_map_path ?? "") !== "",
    entrypoint_path: upload.metadata.entrypoint_path,
    ...(upload.metadata.import_map_path ? { import_map_path: upload.metadata.import_map_path } : {}),
  };
  if (activate) functions.set(upload.slug, fn);
  return fn;
}

/** Hex SHA-256 of some bytes. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

if (import.meta.main) {
  const arg = (name: string) => Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const api = startManagementApi({
    projectRef: arg("ref") ?? "canaisdeploycheckref",
    port: Number(arg("port") ?? 0),
    onRequest: (r) => console.log(`${r.status} ${r.method} ${r.path}${r.message ? ` (${r.message})` : ""}`),
  });
  console.log(`Management API stand-in for project ${api.projectRef} on ${api.url} (Ctrl+C stops it)`);
}
