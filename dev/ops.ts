/**
 * The operator CLI: `npm run ops -- <command> …`. Calls `whatsapp-ops` and the job functions through supabase-js
 * `functions.invoke`, against the local dev stack by default (`.local/dev/stack.json`), or the project given by
 * `SUPABASE_URL` + `SUPABASE_SECRET_KEY` (or `SUPABASE_SERVICE_ROLE_KEY`). Prints a readable summary (`--json`:
 * the raw answer). Exit status: 0 ok/healthy, 1 unhealthy or failed, 2 usage or refused request (4xx), 3 the
 * function could not be reached.
 */
import { createClient } from "@supabase/supabase-js";
import { z } from "zod";
import { normalizeBaseUrl } from "../shared/config.ts";
import { ROOT } from "./paths.ts";
import { JOBS } from "../shared/jobs/mod.ts";

const HELP = `Usage: npm run ops -- <command> [arguments] [--json] [--actor NAME]

On-demand actions on one tenant (function whatsapp-ops):
  diagnose <slug> [--window-hours N]    connection / disconnection / performance verdicts with evidence
  fix <slug> [--plan]                   repair what diagnose found (--plan: show the steps only)
  reconnect <slug>                      connect the instance again (answers the QR code when one is needed)
  pairing-code <slug> --number DIGITS   a pairing code for the owner to type on the phone instead of scanning a
                                        QR code (E.164, 10-15 digits, + optional); refused once connected
  reset <slug> --confirm <slug> [--apply]
                                        logout, delete, clear the config row, recreate (dry run without --apply)
  migrate <slug> --api-url URL (--api-key KEY | --api-key-env VAR) [--apply] [--leave-old-if-unreachable]
                                        move the instance to another Evolution server (dry run checks the server;
                                        --leave-old-if-unreachable: moving off a dead server, keep the new one)
Fleet of Evolution servers (function whatsapp-ops; keys are never shown):
  servers list                          every server: URL, version, enabled/draining, tenants/capacity
  servers register <name> --url URL (--key KEY | --key-env VAR) [--capacity N]
                                        check the server answers and accepts the key, then register it
  servers enable|drain|undrain <name>   drain: no new placements (its tenants stay); undrain, enable: undo
  servers disable <name> [--apply]      no placements or migrations to it (dry run without --apply)
  servers remove <name> --confirm <name> [--apply]
                                        refused while tenants use it (dry run without --apply)
Jobs:
  audit [--apply] [--tenant SLUG]...    isolation-audit (report only without --apply)
  orphans [--apply] [--grace-hours N]   orphan-cleanup (report only without --apply)
  run <job> [--body JSON]               run a scheduled job now: ${JOBS.map((j) => j.name).join(", ")}
  status [slug]                         latest job runs, running operations, orphan sightings, recent actions

Target: the local dev stack (.local/dev/stack.json), or SUPABASE_URL and SUPABASE_SECRET_KEY from the environment.
Exit status: 0 ok, 1 unhealthy or failed, 2 bad usage or refused request, 3 unreachable.`;

const JOB_NAMES = JOBS.map((j) => j.name);

class Usage extends Error {}

/** Parsed command line: positional arguments and flags (repeatable flags keep every value). */
function parseArgs(argv: string[]) {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  const booleans = new Set(["json", "apply", "plan", "help", "leave-old-if-unreachable"]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h") {
      flags.set("help", ["true"]);
    } else if (a.startsWith("--")) {
      const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
      if (booleans.has(name)) flags.set(name, ["true"]);
      else {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new Usage(`--${name} needs a value`);
        flags.set(name, [...(flags.get(name) ?? []), value]);
      }
    } else positional.push(a);
  }
  return {
    positional,
    has: (n: string) => flags.has(n),
    one: (n: string) => flags.get(n)?.at(-1),
    all: (n: string) => flags.get(n) ?? [],
  };
}

/** Where to call: env first, else the dev stack's stack.json. */
function target(): { url: string; key: string } {
  const env = Deno.env.toObject();
  const key = env.SUPABASE_SECRET_KEY || env.SUPABASE_SERVICE_ROLE_KEY;
  if (env.SUPABASE_URL && key) return { url: normalizeBaseUrl(env.SUPABASE_URL), key };
  const file = env.CANAIS_STACK_FILE ?? `${ROOT}/.local/dev/stack.json`;
  let info: { functionsUrl?: string; secretKey?: string };
  try {
    info = JSON.parse(Deno.readTextFileSync(file));
  } catch {
    throw new Usage(`No target: set SUPABASE_URL and SUPABASE_SECRET_KEY, or start the local stack (npm start)`);
  }
  if (!info.functionsUrl || !info.secretKey) throw new Usage(`${file} has no functionsUrl/secretKey`);
  return { url: info.functionsUrl.replace(/\/functions\/v1\/?$/, ""), key: info.secretKey };
}

/** What one invocation answered. */
interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function invoke(fn: string, body: unknown, actor: string): Promise<Answer> {
  const { url, key } = target();
  const client = createClient(url, key, { auth: { persistSession: false, autoRefreshToken: false } });
  const { data, error, response } = await client.functions.invoke(fn, {
    body: body as Record<string, unknown>,
    headers: { "x-ops-actor": actor },
  });
  if (!error) return { status: response?.status ?? 200, body: data as Record<string, unknown> };
  const ctx = (error as { context?: Response }).context;
  if (ctx instanceof Response) {
    const text = await ctx.text();
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { error: { code: "non_json", message: text.slice(0, 500) } };
    }
    return { status: ctx.status, body: parsed };
  }
  return { status: 0, body: { error: { code: "unreachable", message: error.message } } };
}

const slugArg = z.string().min(1);

/** Builds the function call for a command. */
function request(cmd: string, args: ReturnType<typeof parseArgs>): { fn: string; body: Record<string, unknown> } {
  const [, first] = args.positional;
  const slug = () => {
    if (!slugArg.safeParse(first).success) throw new Usage(`${cmd} needs a tenant slug`);
    return first;
  };
  const num = (name: string) => {
    const v = args.one(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Usage(`--${name} must be a number: got '${v}'`);
    return n;
  };
  switch (cmd) {
    case "diagnose":
      return { fn: "whatsapp-ops/diagnose", body: { slug: slug(), windowHours: num("window-hours") } };
    case "fix":
      return { fn: "whatsapp-ops/fix", body: { slug: slug(), apply: !args.has("plan") } };
    case "reconnect":
      return { fn: "whatsapp-ops/reconnect", body: { slug: slug() } };
    case "pairing-code": {
      const number = args.one("number");
      if (!number) throw new Usage("pairing-code needs --number DIGITS (the tenant's WhatsApp number, E.164)");
      return { fn: "whatsapp-ops/pairing-code", body: { slug: slug(), number } };
    }
    case "reset":
      return {
        fn: "whatsapp-ops/reset",
        body: { slug: slug(), confirm: args.one("confirm"), apply: args.has("apply") },
      };
    case "migrate": {
      const envName = args.one("api-key-env");
      const apiKey = args.one("api-key") ?? (envName ? Deno.env.get(envName) : undefined);
      if (!args.one("api-url")) throw new Usage("migrate needs --api-url");
      if (!apiKey) throw new Usage("migrate needs --api-key KEY or --api-key-env VAR (a set variable)");
      return {
        fn: "whatsapp-ops/migrate",
        body: {
          slug: slug(),
          apiUrl: args.one("api-url"),
          apiKey,
          apply: args.has("apply"),
          leaveOldIfUnreachable: args.has("leave-old-if-unreachable"),
        },
      };
    }
    case "audit": {
      const tenants = args.all("tenant");
      return {
        fn: "isolation-audit",
        body: { apply: args.has("apply"), trigger: "cli", ...(tenants.length ? { tenants } : {}) },
      };
    }
    case "orphans":
      return {
        fn: "orphan-cleanup",
        body: { apply: args.has("apply"), graceHours: num("grace-hours"), trigger: "cli" },
      };
    case "run": {
      if (!first || !JOB_NAMES.includes(first)) throw new Usage(`run needs a job: ${JOB_NAMES.join(", ")}`);
      let body: Record<string, unknown> = {};
      const raw = args.one("body");
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          throw new Usage("--body must be JSON");
        }
      }
      return { fn: first, body: { ...body, trigger: "cli" } };
    }
    case "status":
      return { fn: "whatsapp-ops/status", body: first ? { slug: first } : {} };
    case "servers":
      return serversRequest(args);
    default:
      throw new Usage(`unknown command '${cmd}'`);
  }
}

const SERVER_VERBS = ["list", "register", "enable", "disable", "drain", "undrain", "remove"];

/** `servers <verb> [name] …` */
function serversRequest(args: ReturnType<typeof parseArgs>): { fn: string; body: Record<string, unknown> } {
  const [, verb, name] = args.positional;
  if (!verb || !SERVER_VERBS.includes(verb)) throw new Usage(`servers needs one of: ${SERVER_VERBS.join(", ")}`);
  const fn = `whatsapp-ops/servers/${verb}`;
  if (verb === "list") return { fn, body: {} };
  if (!name) throw new Usage(`servers ${verb} needs a server name`);
  switch (verb) {
    case "register": {
      const envName = args.one("key-env");
      const key = args.one("key") ?? (envName ? Deno.env.get(envName) : undefined);
      if (!args.one("url")) throw new Usage("servers register needs --url");
      if (!key) throw new Usage("servers register needs --key KEY or --key-env VAR (a set variable)");
      const capacity = args.one("capacity");
      if (capacity !== undefined && !Number.isFinite(Number(capacity))) {
        throw new Usage(`--capacity must be a number: got '${capacity}'`);
      }
      return {
        fn,
        body: { name, url: args.one("url"), key, ...(capacity === undefined ? {} : { capacity: Number(capacity) }) },
      };
    }
    case "disable":
      return { fn, body: { name, apply: args.has("apply") } };
    case "remove":
      return { fn, body: { name, confirm: args.one("confirm"), apply: args.has("apply") } };
    default:
      return { fn, body: { name } };
  }
}

const GOOD = new Set(["ok", "healthy", "planned", "nothing_to_do", "skipped"]);

/** True when the answer means healthy / done. */
export function succeeded(cmd: string, body: Record<string, unknown>): boolean {
  if (cmd === "diagnose") return body.healthy === true;
  if (cmd === "status") return true;
  if ("job" in body && "runId" in body) return GOOD.has(String(body.status));
  return body.ok === true || GOOD.has(String(body.result));
}

function line(label: string, value: unknown) {
  console.log(`  ${label.padEnd(16)} ${typeof value === "string" ? value : JSON.stringify(value)}`);
}

/** The readable summary of an answer. */
function summarize(cmd: string, b: Record<string, unknown>) {
  // deno-lint-ignore no-explicit-any
  const a = b as any;
  if (cmd === "diagnose") {
    console.log(`${a.tenant} (${a.instance}): ${a.healthy ? "healthy" : "problems: " + a.problems.join(", ")}`);
    line("connection", a.connection.code);
    line("disconnection", a.disconnection.code);
    line("performance", a.performance.code);
    if (a.connection.evidence.state) line("state", a.connection.evidence.state);
    if (a.connection.evidence.evolutionError) line("evolution", a.connection.evidence.evolutionError);
    return;
  }
  if ("job" in a && "runId" in a) {
    console.log(`${a.job}: ${a.status}${a.dryRun ? " (dry run)" : ""} in ${a.durationMs} ms, run ${a.runId}`);
    const r = a.report ?? {};
    if (a.job === "isolation-audit") {
      line("violations", r.violationCount ?? 0);
      for (const v of r.violations ?? []) {
        console.log(`  - ${v.kind} ${v.tenant ?? v.instance}${v.server ? ` (server ${v.server})` : ""}`);
        for (const [i, t] of (v.fixText ?? []).entries()) {
          const applied = v.applied?.[i];
          console.log(
            `      ${applied ? `[${applied.result}] ` : "→ "}${t}${applied?.error ? `: ${applied.error}` : ""}`,
          );
        }
        if (!v.fixText?.length) { for (const n of v.notes ?? []) console.log(`      ! ${n}`); }
      }
      if (r.evolution?.unreachable?.length) line("unreachable", r.evolution.unreachable.join(", "));
      if (r.evolution?.error) line("error", r.evolution.error);
    } else if (a.job === "orphan-cleanup") {
      line("orphans", r.orphanCount ?? 0);
      for (const o of r.orphans ?? []) {
        console.log(`  - ${o.instance}${o.server ? ` on ${o.server}` : ""}: ${o.result ?? ""} ${o.action}`);
      }
      if (r.deleted?.length) line("deleted", r.deleted.join(", "));
      if (r.misplaced?.length) line("misplaced", r.misplaced.length);
      for (const m of r.misplaced ?? []) console.log(`  - ${m.instance} on ${m.server}: ${m.action}`);
      if (r.unreachable?.length) line("unreachable", r.unreachable.join(", "));
    }
    if (r.error) line("error", r.error);
    return;
  }
  if (cmd === "servers") {
    const state = (s: Record<string, unknown>) =>
      `${s.enabled ? (s.draining ? "draining" : "enabled") : "disabled"}`.padEnd(9);
    const row = (s: Record<string, unknown>) =>
      console.log(
        `  ${String(s.name).padEnd(20)} ${state(s)} ${String(s.tenants).padStart(6)}/${String(s.capacity).padEnd(7)} ${
          String(s.version ?? "?").padEnd(8)
        } ${s.url}`,
      );
    if (a.action === "servers.list") {
      console.log(`  ${"name".padEnd(20)} ${"state".padEnd(9)} tenants/capacity version  url`);
      for (const s of a.servers ?? []) row(s);
      line("next placement", a.nextPlacement ?? "none (every server is disabled or draining)");
      return;
    }
    console.log(`${a.action} ${a.server}: ${a.result}${a.dryRun ? " (dry run)" : ""}`);
    for (const p of a.plan ?? []) console.log(`  → ${p}`);
    if (a.after) row(a.after);
    return;
  }
  if (cmd === "status") {
    for (const j of a.jobs ?? []) {
      console.log(
        `  ${j.job.padEnd(16)} ${String(j.status ?? "never run").padEnd(10)} ${j.startedAt ?? "-"}${
          j.missed ? `  MISSED (due by ${j.expectedBy})` : ""
        }`,
      );
    }
    line("operations", (a.runningOperations ?? []).length);
    line("orphans seen", a.orphanSightings?.count ?? 0);
    for (const x of (a.recentActions ?? []).slice(0, 10)) {
      console.log(`  ${x.createdAt} ${x.tenantSlug ?? "-"} ${x.action} ${x.result}${x.error ? `: ${x.error}` : ""}`);
    }
    return;
  }
  console.log(`${a.action} ${a.tenant}: ${a.result}${a.dryRun ? " (dry run)" : ""}`);
  for (const p of a.plan ?? []) console.log(`  → ${p}`);
  for (const s of a.steps ?? []) console.log(`  [${s.result}] ${s.step}${s.error ? `: ${s.error}` : ""}`);
  for (const s of a.rollback ?? []) console.log(`  [${s.result}] ${s.step}${s.error ? `: ${s.error}` : ""}`);
  for (const h of a.needsHuman ?? []) console.log(`  needs a human (${h.problem}): ${h.advice}`);
  if (a.failedStep) line("failed at", a.failedStep);
  if (a.error) line("error", a.error);
  if (a.connect?.kind === "qr") line("qr", `scan it (count ${a.connect.qr.count})`);
  if (a.action === "pairing-code") {
    if (a.pairingCode) line("pairing code", `${a.pairingCode} for ${a.number}`);
    line("next", a.advice);
  }
  if (a.budget) line("budget", `${a.budget.used}/${a.budget.max} used`);
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const cmd = args.positional[0];
  if (!cmd || args.has("help") || cmd === "help") {
    console.log(HELP);
    return cmd || args.has("help") ? 0 : 2;
  }
  let req;
  try {
    req = request(cmd, args);
  } catch (e) {
    if (!(e instanceof Usage)) throw e;
    console.error(`${e.message}\n\n${HELP}`);
    return 2;
  }
  const user = Deno.env.get("USER") ?? "operator";
  const actor = args.one("actor") ?? `cli:${user}@${Deno.hostname()}`;
  let answer: Answer;
  try {
    answer = await invoke(req.fn, req.body, actor);
  } catch (e) {
    if (e instanceof Usage) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  if (args.has("json")) console.log(JSON.stringify(answer.body, null, 2));
  if (answer.status === 0) {
    if (!args.has("json")) console.error(`Cannot reach the functions: ${JSON.stringify(answer.body.error)}`);
    return 3;
  }
  if (answer.status >= 400) {
    const err = (answer.body.error ?? {}) as { code?: string; message?: string };
    if (!args.has("json")) {
      console.error(`${answer.status} ${err.code ?? ""}: ${err.message ?? JSON.stringify(answer.body)}`);
    }
    return answer.status >= 500 ? 1 : 2;
  }
  if (!args.has("json")) summarize(cmd, answer.body);
  return succeeded(cmd, answer.body) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
