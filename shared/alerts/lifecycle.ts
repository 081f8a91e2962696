/**
 * @module
 * The alert lifecycle, Alertmanager-like, evaluated in SQL (`maintenance.evaluate_alerts`) once per health-check
 * run: an alert is identified by its fingerprint (kind, plus the tenant slug for tenant alerts); it is notified
 * when it starts firing, reminded every repeat interval (default 4 h), notified once when it resolves; platform
 * incidents (Evolution or the database down, a mass disconnect) inhibit the tenant alerts they explain.
 */
import type { Sql } from "../db.ts";
import type { ChannelName } from "./channels.ts";

/** Kinds of platform alerts (no tenant). */
export type PlatformAlertKind = "evolution_down" | "database_down" | "supabase_down" | "mass_disconnect" | "missed_run";

/** Kinds of tenant alerts (fingerprint `<kind>:<slug>`), derived in SQL from `maintenance.tenant_health`. */
export type TenantAlertKind =
  | "instance_missing"
  | "instance_disconnected"
  | "check_error"
  | "frequent_disconnections"
  | "zombie_suspected";

/** A platform alert that fires in this run. */
export interface AlertCandidate {
  fingerprint: string;
  kind: PlatformAlertKind;
  severity: "critical" | "warning";
  summary: string;
  labels?: Record<string, string>;
  details?: Record<string, unknown>;
}

/** What the evaluation did. */
export interface AlertEvaluation {
  notified: Partial<Record<"firing" | "reminder" | "resolved", number>>;
  queued: number;
  fired: string[];
  resolved: string[];
  resolvedCount: number;
  firing: number;
  inhibited: number;
  platform: string[];
}

/** Options of one evaluation. */
export interface EvaluateOptions {
  /** Platform kinds evaluated in this run: a firing alert of such a kind that is not a candidate resolves. */
  platformKinds: PlatformAlertKind[];
  /** Tenants were checked in this run (their tenant_health rows carry the run id). */
  tenantsEvaluated: boolean;
  /** Look for a mass disconnect among the tenants of this run (default: when tenants were evaluated). */
  massDetection?: boolean;
  /** Every active tenant was checked: alerts of removed/deactivated tenants resolve. */
  fullRun: boolean;
  channels: ChannelName[];
  repeatInterval?: string;
  share?: number;
  minTenants?: number;
}

/** Evaluates the alert rules for one run and queues the notifications they call for. */
export async function evaluateAlerts(
  sql: Sql,
  run: { runId: string; at: Date; candidates: AlertCandidate[] },
  options: EvaluateOptions,
): Promise<AlertEvaluation> {
  const [{ result }] = await sql<{ result: AlertEvaluation }[]>`
    select maintenance.evaluate_alerts(${run.runId}, ${run.at}, ${sql.json(run.candidates as never)},
      ${sql.json(options as never)}) as result`;
  return result;
}
