/**
 * @module
 * Delivery through `maintenance.notification_outbox`: queue once per channel (dedupe key); then, per channel, claim
 * one due row just before sending it, under a lease twice the channel's worst delivery time and a token of its own;
 * deliver; and record sent / retry later with backoff / failed, only while that token still holds the row.
 *
 * The guarantee: a row is delivered once while its drainer lives, however slow the channel and however many
 * drainers run (a claim never covers more than the one send in progress, and that send ends within its lease as
 * the channel's timeout bounds it). After a drainer dies mid-send the row is claimed again once its lease has run
 * out and sent by the next drainer, once: if the receiver had accepted the dead drainer's request, that is a second
 * delivery (at-least-once, only after a crash). The same holds when a receiver accepts a request but answers after
 * the channel's timeout (it is retried), or when a drainer stalls past its lease between claim and completion (its
 * completion is then refused, reported as `lost`).
 */
import { z } from "zod";
import type { Sql } from "../db.ts";
import { errorMessage } from "../errors.ts";
import {
  type Channel,
  type ChannelName,
  deliverWithRetry,
  deliveryBoundMs,
  DeliveryError,
  type Notification,
  type OutboxEvent,
} from "./channels.ts";

/** A stored notification payload (what the SQL side and `send()` queue). */
export const StoredNotification = z.object({
  severity: z.enum(["info", "warning", "critical"]),
  title: z.string(),
  text: z.string(),
  fields: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
});
export type StoredNotification = z.infer<typeof StoredNotification>;

/** What one drain did. */
export interface DrainResult {
  /** Rows claimed and attempted. */
  claimed: number;
  sent: number;
  /** Rows left pending for a later drain after a failed attempt (their own, or their channel's: it is down). */
  retrying: number;
  failed: number;
  /** Attempts whose completion was refused as another drainer had taken the row over (the lease ran out). */
  lost: number;
  /** True when the drain stopped on its time budget or row limit: due rows may be left for the next one. */
  remaining: boolean;
  errors: Array<{ id: number; channel: ChannelName; error: string }>;
}

/** Options of {@link drainOutbox}. */
export interface DrainOptions {
  /** Only these rows (a `send()` delivers what it just queued). */
  ids?: number[];
  /** At most this many rows per channel in this call (default 200). */
  limit?: number;
  /**
   * How long this call may take (default {@link DRAIN_BUDGET_MS}): a row is claimed only while its worst delivery
   * time still fits before the deadline, so the call ends within it.
   */
  budgetMs?: number;
}

/**
 * The default time budget of one drain. A health-check run drains last and must end well inside an Edge Function's
 * 150 s; one Slack delivery can take 20 s at worst (two 10 s attempts).
 */
export const DRAIN_BUDGET_MS = 60_000;

/**
 * The lease of one claimed row on a channel: twice the channel's worst delivery time (Slack: 40.5 s), so the send,
 * the completion's round trip and a slow database all fit in it.
 */
export function leaseMs(channel: Channel): number {
  return 2 * deliveryBoundMs(channel);
}

/**
 * Queues a job's result (`kind` 'job', payload as given) on the given channels (the application webhooks), once per
 * run and channel. Returns new row ids.
 */
export async function enqueueJobResult(
  sql: Sql,
  result: Record<string, unknown> & { runId: string },
  channels: ChannelName[],
): Promise<number[]> {
  if (!channels.length) return [];
  const rows = await sql<{ id: string }[]>`
    select maintenance.enqueue_notification(${`job:${result.runId}`}, ${sql.json(result as never)},
      ${channels}::text[], null, 'job') as id`;
  return rows.map((r) => Number(r.id));
}

/** Queues a notification on each channel; the same dedupe key is queued once per channel. Returns new row ids. */
export async function enqueue(
  sql: Sql,
  message: Notification,
  options: { channels: ChannelName[]; dedupeKey: string },
): Promise<number[]> {
  const { dedupeKey: _ignored, ...payload } = message;
  const rows = await sql<{ id: string }[]>`
    select maintenance.enqueue_notification(${options.dedupeKey}, ${sql.json(payload as never)},
      ${options.channels}::text[]) as id`;
  return rows.map((r) => Number(r.id));
}

/**
 * Delivers due rows of the given channels (all due rows, or only `ids`), in id order per channel, the channels in
 * parallel and each channel's rows one at a time: each row is claimed just before it is sent (see the module
 * note). A retryable failure takes the channel to be down: its other due rows are deferred with the same error and
 * backoff. Bounded work per call (`limit` rows per channel, `budgetMs`). Nothing here throws for a channel failure.
 */
export async function drainOutbox(sql: Sql, channels: Channel[], options: DrainOptions = {}): Promise<DrainResult> {
  const result: DrainResult = { claimed: 0, sent: 0, retrying: 0, failed: 0, lost: 0, remaining: false, errors: [] };
  const deadline = Date.now() + (options.budgetMs ?? DRAIN_BUDGET_MS);
  const limit = options.limit ?? 200;
  const ids = options.ids ?? null;
  const unique = [...new Map(channels.map((c) => [c.name, c])).values()];
  type Row = {
    id: string;
    claim_token: string;
    payload: Record<string, unknown>;
    dedupe_key: string;
    kind: OutboxEvent["kind"];
    created_at: Date;
  };
  await Promise.all(unique.map(async (channel) => {
    const lease = Math.ceil(leaseMs(channel));
    for (let n = 0; n < limit; n++) {
      if (Date.now() + deliveryBoundMs(channel) > deadline) {
        result.remaining = true;
        return;
      }
      const [row] = await sql<Row[]>`
        select id, claim_token, payload, dedupe_key, kind, created_at from maintenance.claim_notification(${channel.name},
          ${lease}::integer * interval '1 millisecond', ${ids}::bigint[])`;
      if (!row) return;
      result.claimed++;
      const id = Number(row.id);
      let error: unknown = null;
      try {
        await deliverWithRetry(
          channel,
          channel.deliverEvent
            ? { id: row.dedupe_key, kind: row.kind, createdAt: new Date(row.created_at), payload: row.payload }
            : StoredNotification.parse(row.payload),
        );
      } catch (e) {
        error = e;
      }
      const de = error instanceof DeliveryError ? error : null;
      const permanent = error !== null && !de?.retryable;
      const retryAfter = de?.retryAfterMs ? `${Math.ceil(de.retryAfterMs / 1000)} seconds` : null;
      const message = error === null ? null : errorMessage(error);
      const [{ status }] = await sql<{ status: string }[]>`
        select maintenance.finish_notification(${id}, ${row.claim_token}::uuid, ${error === null}, ${message},
          ${retryAfter}::interval, ${permanent}) as status`;
      if (status === "sent") result.sent++;
      else if (status === "failed") result.failed++;
      else if (status === "pending") result.retrying++;
      else result.lost++;
      if (status === "lost") {
        result.errors.push({
          id,
          channel: channel.name,
          error: `Cannot complete notification ${id} as another drainer took it over after its lease ran out` +
            (error === null ? " (it was delivered, and may be delivered twice)" : `: ${message}`),
        });
      } else if (message !== null) {
        result.errors.push({ id, channel: channel.name, error: message });
      }
      if (!de?.retryable) continue;
      // the channel is down: the rest of its due rows wait for a later drain (no hammering)
      const deferred = await sql<{ id: string; status: string }[]>`
        select id, status from maintenance.defer_notifications(${channel.name}, ${message}, ${retryAfter}::interval,
          ${ids}::bigint[], ${limit - n - 1})`;
      for (const d of deferred) {
        if (d.status === "failed") result.failed++;
        else result.retrying++;
        result.errors.push({ id: Number(d.id), channel: channel.name, error: message! });
      }
      return;
    }
    result.remaining = true;
  }));
  return result;
}
