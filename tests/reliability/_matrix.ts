/**
 * @module
 * Shared pieces of the reliability matrices (`tests/reliability/*_test.ts`): raw HTTP calls to the test stack's
 * functions, row counts of the tables a bad or unauthorised request must never change, the simulator's control API
 * over HTTP, a seeded PRNG for the property tests, and the list of secrets no response or log may contain.
 */
import assert from "node:assert/strict";
import { stack, testSql } from "../_helpers.ts";
import { webhookToken } from "../../shared/naming.ts";

/** Keys of the in-process simulators of the matrices (the secrets scan looks for them too). */
export const FAULT_SIM_KEY = "evo-reliability-fault-sim-key-1";
/** The key of the migrate target simulator. */
export const MIGRATE_TARGET_KEY = "evo-reliability-migrate-target-key-2";
/**
 * The Standard Webhooks secret tests/app_webhooks_test.ts signs every application webhook with (`APP_WEBHOOK_SECRET`):
 * fixed, so the secrets scan looks for it too.
 */
export const APP_WEBHOOK_TEST_SECRET = "whsec_Y2FuYWlzLWFwcC13ZWJob29rLXRlc3Qtc2VjcmV0LTAx";

/** A raw answer of a function: status, body text, parsed JSON when it is JSON. */
export interface RawResponse {
  status: number;
  text: string;
  json: { error?: { code: string; message: string; details: unknown } } & Record<string, unknown>;
}

/** One raw request to a function of the test stack (no helpers in the way: any method, body, header). */
export async function raw(
  fn: string,
  init: {
    method?: string;
    path?: string;
    body?: BodyInit | null;
    headers?: Record<string, string>;
    key?: string | null;
  } = {},
): Promise<RawResponse> {
  const s = stack();
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  const key = init.key === undefined ? s.secretKey : init.key;
  if (key) headers.apikey = key;
  const res = await fetch(`${s.functionsUrl}/${fn}${init.path ?? ""}`, {
    method: init.method ?? "POST",
    headers,
    body: init.body ?? null,
  });
  const text = await res.text();
  let json = {} as RawResponse["json"];
  try {
    json = JSON.parse(text);
  } catch { /* HTML or text */ }
  return { status: res.status, text, json };
}

/** Row counts of the tables a rejected request must leave alone (api_logs scoped to `slugs` and slug-less rows). */
export async function rowCounts(slugs: string[] = []): Promise<Record<string, number>> {
  const [r] = await testSql()<Record<string, number>[]>`
    select
      (select count(*)::int from public.tenants) as tenants,
      (select count(*)::int from public.tenant_integrations) as tenant_integrations,
      (select count(*)::int from public.api_logs where tenant_slug is null or tenant_slug = any (${slugs}::text[]))
        as api_logs,
      (select count(*)::int from maintenance.actions_audit) as actions_audit,
      (select count(*)::int from maintenance.job_runs) as job_runs`;
  return { ...r };
}

/** The simulator of the test stack, through its HTTP control API. */
export async function simControl<T = unknown>(method: string, args: unknown[] = []): Promise<T> {
  const res = await fetch(`${stack().evolutionUrl}/_control/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(args),
  });
  const text = await res.text();
  assert.ok(res.ok, `simulator control ${method} answered ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** mulberry32: a small seeded PRNG, so a failing property run can be replayed with its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a property run: `RELIABILITY_SEED` if set, else a random one; printed either way. */
export function propertySeed(name: string): number {
  const fromEnv = Deno.env.get("RELIABILITY_SEED");
  const seed = fromEnv ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[${name}] seed ${seed} (replay with RELIABILITY_SEED=${seed})`);
  return seed;
}

/** A named secret that must never show up in a response, a stored row or a log file. */
export interface Secret {
  name: string;
  value: string;
}

/**
 * The stack's secrets: the secret key, the Evolution API key, the webhook secret, and the webhook token of every
 * tenant in the database (HMAC of its slug), plus `extra` (keys of in-process simulators, a migrate target's key).
 */
export async function stackSecrets(extra: Secret[] = []): Promise<Secret[]> {
  const s = stack();
  const out: Secret[] = [
    { name: "secret key", value: s.secretKey },
    { name: "cron secret key (Vault's secret_key)", value: s.cronSecretKey },
    { name: "Vault root key", value: (await Deno.readTextFile(`${s.dataDir}/vault/root.key`)).trim() },
    { name: "Evolution API key", value: s.evolutionApiKey },
    { name: "webhook secret", value: s.webhookSecret },
    ...extra,
  ];
  const slugs = await testSql()<{ slug: string }[]>`select slug from public.tenants`;
  for (const { slug } of slugs) {
    const token = await webhookToken(slug, s.webhookSecret).catch(() => null);
    if (token) out.push({ name: `webhook token of '${slug}'`, value: token });
  }
  return out;
}

/** The secrets found in `text` (by name), for an assertion message that does not print the secret itself. */
export function leaks(text: string, secrets: Secret[]): string[] {
  return secrets.filter((x) => x.value.length >= 8 && text.includes(x.value)).map((x) => x.name);
}

/** Asserts a 4xx JSON error whose message matches `names` (the field or the problem), and never a 5xx. */
export function assertRejected(r: RawResponse, expected: { status?: number; names: RegExp }, label: string) {
  assert.ok(r.status >= 400 && r.status < 500, `${label}: expected a 4xx, got ${r.status} ${r.text.slice(0, 300)}`);
  if (expected.status) assert.equal(r.status, expected.status, `${label}: ${r.text.slice(0, 300)}`);
  assert.ok(r.json.error, `${label}: a JSON error body, got ${r.text.slice(0, 200)}`);
  assert.match(r.json.error!.message, expected.names, `${label}: the message names the problem`);
  assert.ok(r.text.length < 20_000, `${label}: the error does not echo a huge input back (${r.text.length} chars)`);
}
