/**
 * @module
 * Webhook ingestion: distinct `connection.update` envelopes POSTed to the real `whatsapp-webhook` function of the
 * stack (functions router, over HTTP) by a load generator with bounded concurrency (p-map), each with its tenant's
 * `x-webhook-token`; the same events, same load generator, to three receivers of bench/webhook_receiver.ts, each its
 * own process served the same way: the simplest receiver (one plain api_logs insert per request, the baseline), ours
 * (group commit) and ours with one statement per event (as before batching). Figures for each: events/s over the
 * whole run, per-request latency p50/p99, non-2xx answers, events lost (sent, yet no api_logs row); the ratio is
 * ours (own process) over the baseline.
 */
import pMap from "p-map";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { configEnv, type StackInfo } from "../dev/stack.ts";
import { type BenchContext, percentile, round, target } from "./harness.ts";

/** Options of the webhook benchmark. */
export interface WebhookBenchOptions {
  events: number;
  /** Tenants the events are spread over (round robin). */
  tenants: number;
  concurrency: number;
  fullSize: boolean;
  /** Tenant slug prefix; tenants `{prefix}{i}` must exist (the dataset's). */
  prefix: string;
}

/** Runs the benchmark; returns the JSON section `webhook`. */
export async function benchWebhook(ctx: BenchContext, options: WebhookBenchOptions) {
  const { sql, info, log } = ctx;
  const slugs = Array.from({ length: options.tenants }, (_, i) => `${options.prefix}${i}`);
  const tokens = new Map(
    await Promise.all(slugs.map(async (s) => [s, await webhookToken(s, info.webhookSecret)] as const)),
  );
  const base = Date.now();
  // the same events for both receivers; `runId` tells their rows apart
  const post = (url: string, runId: string, i: number) => {
    const slug = slugs[i % slugs.length];
    const instance = `revalya-${slug}`;
    const state = ["connecting", "open", "close"][i % 3];
    return fetch(`${url}/api/whatsapp/webhook/${slug}`, {
      method: "POST",
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: tokens.get(slug)! },
      body: JSON.stringify({
        event: "connection.update",
        instance,
        data: { instance, state, statusReason: state === "close" ? 428 : 200, bench: runId, seq: i },
        destination: `${info.webhookBaseUrl}/api/whatsapp/webhook/${slug}`,
        date_time: new Date(base + i).toISOString(),
        sender: "5511999999999@s.whatsapp.net",
        server_url: info.evolutionUrl,
        apikey: null,
      }),
    });
  };

  /** A receiver under the load: its answers, latencies and CPU, summed over the rounds. */
  interface Run {
    name: string;
    url: string;
    pid?: number;
    runId: string;
    latencies: number[];
    statuses: Record<string, number>;
    ok: number;
    ms: number;
    cpuMs: number | null;
  }
  const run = (name: string, url: string, pid?: number): Run => ({
    name,
    url,
    pid,
    runId: crypto.randomUUID(),
    latencies: [],
    statuses: {},
    ok: 0,
    ms: 0,
    cpuMs: pid === undefined ? null : 0,
  });
  const warmUp = async (r: Run) => {
    // the receiver's tenant cache and connections (not counted)
    await pMap(slugs.slice(0, Math.min(slugs.length, 50)), async (_, i) => {
      const res = await post(r.url, r.runId, options.events + i);
      await res.body?.cancel();
    }, { concurrency: options.concurrency });
  };
  const load = async (r: Run, from: number, to: number) => {
    const cpu0 = cpuMs(r.pid);
    const t0 = performance.now();
    await pMap(Array.from({ length: to - from }, (_, i) => from + i), async (i) => {
      const s = performance.now();
      let status: string;
      try {
        const res = await post(r.url, r.runId, i);
        await res.body?.cancel();
        status = String(res.status);
        if (res.status === 200) r.ok++;
      } catch (error) {
        status = error instanceof Error ? error.name : "error";
      }
      r.latencies.push(performance.now() - s);
      r.statuses[status] = (r.statuses[status] ?? 0) + 1;
    }, { concurrency: options.concurrency });
    r.ms += performance.now() - t0;
    const cpu1 = cpuMs(r.pid);
    if (r.cpuMs !== null) r.cpuMs = cpu0 === null || cpu1 === null ? null : r.cpuMs + cpu1 - cpu0;
  };
  const figures = async (r: Run) => {
    const [{ rows }] = await sql<{ rows: number }[]>`
      select count(distinct (data ->> 'seq'))::int as rows from public.api_logs
      where created_at >= ${new Date(base - 600_000)} and service = 'whatsapp' and event = 'connection.update'
        and data ->> 'bench' = ${r.runId}
        and (data ->> 'seq')::int < ${options.events}`;
    return {
      eventsPerSec: Math.round(options.events / (r.ms / 1000)),
      p50: percentile(r.latencies, 50),
      p99: percentile(r.latencies, 99),
      ms: round(r.ms, 1),
      // the receiver process's CPU per event (user + system): where the machine's 2 cores go
      receiverCpuUsPerEvent: r.cpuMs === null ? null : Math.round((r.cpuMs * 1000) / options.events),
      answered200: r.ok,
      statuses: r.statuses,
      rows,
      lost: options.events - rows,
    };
  };

  const port0 = Number(new URL(info.functionsUrl).port) + 45;
  const receivers = {
    ours: await startReceiver("ours", info, port0),
    perEvent: await startReceiver("per-event", info, port0 + 1),
    baseline: await startReceiver("baseline", info, port0 + 2),
  };
  try {
    // each in its own process, served the same way; the real function of the stack (behind its router) too
    const runs = [
      run("baseline", receivers.baseline.url, receivers.baseline.pid),
      run("ours", receivers.ours.url, receivers.ours.pid),
      run("ours, one statement per event", receivers.perEvent.url, receivers.perEvent.pid),
      run("ours, the stack's function behind its router", info.webhookBaseUrl),
    ];
    for (const r of runs) await warmUp(r);
    // the same events to each, in alternating rounds (the order rotating), so a change of the machine's load
    // meanwhile falls on all of them alike
    const rounds = options.fullSize ? 8 : 2;
    log(
      `webhook: ${options.events} events to each of ${runs.length} receivers in ${rounds} alternating rounds, ` +
        `concurrency ${options.concurrency}, ${options.tenants} tenants`,
    );
    for (let k = 0; k < rounds; k++) {
      const from = Math.floor((k * options.events) / rounds);
      const to = Math.floor(((k + 1) * options.events) / rounds);
      for (let j = 0; j < runs.length; j++) await load(runs[(j + k) % runs.length], from, to);
    }
    const [simplest, ours, perEvent, router] = await Promise.all(runs.map(figures));
    const enumeration = await timeUnknownVersusWrongToken(
      info.webhookBaseUrl,
      slugs[0],
      options.fullSize ? 400 : 100,
    );
    const ratio = round(ours.eventsPerSec / simplest.eventsPerSec, 2);
    return {
      size: { events: options.events, tenants: options.tenants, concurrency: options.concurrency },
      unit: "events/s",
      ours,
      baseline: simplest,
      perEvent,
      router,
      seed: null,
      ratio,
      seedNote: "the seed has no webhook ingestion path; the comparison is the simplest receiver " +
        "(bench/webhook_baseline.ts: one plain api_logs insert per request, no dedup, no receipt)",
      targets: [
        target("≥ 1,000 events/s sustained", ours.eventsPerSec, {
          min: 1000,
          text: "≥ 1000 events/s",
          applies: options.fullSize,
        }),
        target("≥ 2× the simplest receiver's events/s", ratio, { min: 2, text: "≥ 2", applies: options.fullSize }),
        target("p99 ≤ 50 ms", ours.p99, { max: 50, text: "≤ 50 ms", applies: options.fullSize }),
        target("0 events lost", ours.lost, { max: 0, text: "0" }),
        target("unknown slug answered in the time of a wrong token (median ratio)", enumeration.ratio, {
          min: 0.8,
          max: 1.25,
          text: "0.8–1.25",
        }),
      ],
      enumeration,
      seconds: round((ours.ms + simplest.ms + perEvent.ms + router.ms) / 1000, 1),
    };
  } finally {
    for (const r of Object.values(receivers)) await r.stop();
  }
}

/** Starts bench/webhook_receiver.ts in `mode` as its own process (as the functions router is); waits until it listens. */
async function startReceiver(mode: string, info: StackInfo, port: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", new URL("./webhook_receiver.ts", import.meta.url).pathname],
    clearEnv: true,
    env: {
      ...configEnv(info),
      PATH: Deno.env.get("PATH") ?? "",
      WEBHOOK_RECEIVER: mode,
      WEBHOOK_RECEIVER_PORT: String(port),
      DENO_NO_UPDATE_CHECK: "1",
    },
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const until = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => null);
    if (res) {
      await res.body?.cancel();
      break;
    }
    if (Date.now() > until) {
      child.kill("SIGKILL");
      throw new Error(`the ${mode} receiver did not listen on :${port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${port}/whatsapp-webhook`,
    async stop() {
      await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux); null elsewhere. */
function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name), in clock ticks (100/s)
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/**
 * The receiver must not tell a stranger which slugs exist: an unknown slug and a real slug with a wrong token get
 * the same 401 and body, and should take the same time. Alternated one by one (so load drifts hit both alike), each
 * medians compared.
 */
async function timeUnknownVersusWrongToken(baseUrl: string, realSlug: string, n: number) {
  const once = async (slug: string) => {
    const s = performance.now();
    const res = await fetch(`${baseUrl}/api/whatsapp/webhook/${slug}`, {
      method: "POST",
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: "0".repeat(64) },
      body: JSON.stringify({ event: "connection.update", instance: `revalya-${slug}`, data: { state: "open" } }),
    });
    const body = await res.text();
    return { ms: performance.now() - s, status: res.status, body };
  };
  const unknown: number[] = [];
  const wrong: number[] = [];
  const bodies = new Set<string>();
  for (let i = 0; i < n; i++) {
    // one unknown slug, probed again and again as a stranger would (both kinds of entry live as long in the cache)
    const u = await once("no-such-tenant-bench");
    const w = await once(realSlug);
    unknown.push(u.ms);
    wrong.push(w.ms);
    bodies.add(`${u.status} ${u.body}`);
    bodies.add(`${w.status} ${w.body}`);
  }
  const mu = percentile(unknown, 50) ?? 0;
  const mw = percentile(wrong, 50) ?? 1;
  return {
    requests: n * 2,
    unknownMedianMs: mu,
    wrongTokenMedianMs: mw,
    ratio: round(mu / mw, 2),
    sameAnswer: bodies.size === 1,
  };
}
