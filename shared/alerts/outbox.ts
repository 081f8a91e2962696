/**
 * @module
 * Delivery through `maintenance.notification_outbox`: queue once per channel (dedupe key), claim due rows (a lease
 * so two drainers never send the same row), deliver, and record sent / retry later with backoff / failed.
 */
import { z } from "zod";
import type { Sql } from "../db.ts";
import { errorMessage } from "../errors.ts";
import { type Channel, type ChannelName, deliverWithRetry, DeliveryError, type Notification } from "./channels.ts";

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
  claimed: number;
  sent: number;
  retrying: number;
  failed: number;
  errors: Array<{ id: number; channel: ChannelName; error: string }>;
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
 * Delivers due rows of the given channels (all due rows, or only `ids`), in id order per channel, with bounded
 * work per call (`limit`). A channel down leaves its rows pending with backoff; nothing here throws for a
 * channel failure.
 */
export async function drainOutbox(
  sql: Sql,
  channels: Channel[],
  options: { ids?: number[]; limit?: number } = {},
): Promise<DrainResult> {
  const result: DrainResult = { claimed: 0, sent: 0, retrying: 0, failed: 0, errors: [] };
  if (channels.length === 0) return result;
  const byName = new Map(channels.map((c) => [c.name, c]));
  type Row = { id: string; channel: ChannelName; payload: unknown };
  const rows = await sql<Row[]>`
    select id, channel, payload from maintenance.claim_notifications(${[...byName.keys()]}::text[],
      ${options.limit ?? 200}, interval '2 minutes', ${options.ids ?? null}::bigint[])
    order by id`;
  result.claimed = rows.length;
  // channels are independent: one slow or dead channel does not hold the others; within a channel, in order
  const perChannel = new Map<ChannelName, Row[]>();
  for (const r of rows) perChannel.set(r.channel, [...(perChannel.get(r.channel) ?? []), r]);
  await Promise.all([...perChannel.entries()].map(async ([name, list]) => {
    const channel = byName.get(name)!;
    let down: DeliveryError | null = null;
    for (const row of list) {
      const id = Number(row.id);
      let error: unknown = down;
      if (!down) {
        try {
          const parsed = StoredNotification.parse(row.payload);
          await deliverWithRetry(channel, parsed);
          error = null;
        } catch (e) {
          error = e;
        }
      }
      if (error === null) {
        await sql`select maintenance.complete_notification(${id}, true)`;
        result.sent++;
        continue;
      }
      const de = error instanceof DeliveryError ? error : null;
      const permanent = de ? !de.retryable : !(error instanceof DeliveryError);
      // after a retryable failure, the rest of this channel's rows wait for the next drain (no hammering)
      if (de?.retryable) down = de;
      const retryAfter = de?.retryAfterMs ? `${Math.ceil(de.retryAfterMs / 1000)} seconds` : null;
      const [{ status }] = await sql<{ status: string }[]>`
        select maintenance.complete_notification(${id}, false, ${errorMessage(error)}, ${retryAfter}::interval,
          ${permanent}) as status`;
      if (status === "failed") result.failed++;
      else result.retrying++;
      result.errors.push({ id, channel: name, error: errorMessage(error) });
    }
  }));
  return result;
}
