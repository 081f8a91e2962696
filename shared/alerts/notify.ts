/**
 * @module
 * Notifiers (placeholder until the alerts issue lands: log only).
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db.ts";

/** A message to the operators. */
export interface Notification {
  severity: "info" | "warning" | "critical";
  title: string;
  text: string;
  fields?: Record<string, string | number>;
}

/** Sends notifications to every configured channel. */
export interface Notifier {
  send(message: Notification): Promise<void>;
}

/** Builds the notifier from the configuration. */
export function createNotifier(_config: Config, _options: { sql?: Sql } = {}): Notifier {
  return {
    send(message) {
      console.log(JSON.stringify({ level: "alert", ...message }));
      return Promise.resolve();
    },
  };
}
