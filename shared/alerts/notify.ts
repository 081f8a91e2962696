/**
 * @module
 * The notifier every job uses (`deps.notify`). With a database, `send()` goes through the outbox like the alerts
 * do: queued once per channel, delivered at once, and retried by later health-check runs if a channel is down.
 * Without one (or when the database is unreachable) it delivers directly.
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db.ts";
import { errorMessage } from "../errors.ts";
import { type Channel, channelsFor, deliverWithRetry, isWebhookChannel, type Notification } from "./channels.ts";
import { type DrainOptions, drainOutbox, type DrainResult, enqueue, enqueueJobResult } from "./outbox.ts";

export type { Notification } from "./channels.ts";

/** Sends notifications to every configured channel. */
export interface Notifier {
  /** Queues (outbox) and delivers; a channel that is down is retried later. Never throws for a channel failure. */
  send(message: Notification): Promise<void>;
  /** Delivers due outbox rows (retries of earlier failures). */
  drain?(options?: DrainOptions): Promise<DrainResult>;
  /** Delivers now on every channel, bypassing the outbox (the database is down). */
  sendDirect?(message: Notification): Promise<Array<{ channel: string; ok: boolean; error?: string }>>;
  /** The enabled channels. */
  channels?: Channel[];
  /**
   * Queues a job's result for the application webhooks (none: nothing) and delivers it; a webhook that is down is
   * retried by later drains. Never throws.
   */
  jobResult?(result: JobResult): Promise<void>;
}

/** What the application webhooks hear of a finished run (`job.completed`): small, no report. */
export interface JobResult {
  job: string;
  runId: string;
  status: string;
  summary: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  trigger: string;
  dryRun: boolean;
  error: string | null;
}

/** Builds the notifier from the configuration (Slack, email, log: each optional). */
export function createNotifier(config: Config, options: { sql?: Sql; channels?: Channel[] } = {}): Notifier {
  const channels = options.channels ?? channelsFor(config);
  const sql = options.sql;
  const sendDirect = (message: Notification) =>
    Promise.all(channels.map(async (c) => {
      try {
        await deliverWithRetry(c, message);
        return { channel: c.name, ok: true };
      } catch (error) {
        return { channel: c.name, ok: false, error: errorMessage(error) };
      }
    }));
  const webhooks = channels.filter((c) => isWebhookChannel(c.name));
  return {
    channels,
    sendDirect,
    async jobResult(result) {
      if (!sql || !webhooks.length) return;
      try {
        const ids = await enqueueJobResult(sql, { ...result }, webhooks.map((c) => c.name));
        if (ids.length) await drainOutbox(sql, webhooks, { ids });
      } catch { /* a job result is told at best effort: the run itself is in job_runs */ }
    },
    drain: (o) =>
      sql
        ? drainOutbox(sql, channels, o)
        : Promise.resolve({ claimed: 0, sent: 0, retrying: 0, failed: 0, lost: 0, remaining: false, errors: [] }),
    async send(message) {
      if (!sql) {
        await sendDirect(message);
        return;
      }
      let ids: number[];
      try {
        ids = await enqueue(sql, message, {
          channels: channels.map((c) => c.name),
          dedupeKey: `message:${message.dedupeKey ?? crypto.randomUUID()}`,
        });
      } catch {
        // the outbox is unreachable: deliver directly rather than lose the message
        await sendDirect(message);
        return;
      }
      if (ids.length) await drainOutbox(sql, channels, { ids }).catch(() => {});
    },
  };
}
