/**
 * @module
 * The alert lifecycle, Alertmanager-like, evaluated in SQL (`maintenance.evaluate_alerts`) once per health-check
 * run: an alert is identified by its fingerprint (kind, plus the tenant slug for tenant alerts); it is notified
 * when it starts firing, reminded every repeat interval (default 4 h), notified once when it resolves; platform
 * incidents (Evolution or the database down, a mass disconnect on one Evolution server) inhibit the tenant alerts
 * they explain. The policy on top (issue 15): a tenant alert fires after `alert_failure_threshold` bad checks in a
 * row and resolves after `alert_success_threshold` checks without its condition (Gatus's failure/success
 * thresholds); a flapping tenant has one `flapping` alert and its other alerts are held back; mass disconnects are
 * judged per server over `platform_incident_window`; only a full run raises or resolves platform alerts.
 */
import type { Sql } from "../db.ts";
import type { ChannelName } from "./channels.ts";

/** Kinds of platform alerts (no tenant). */
export type PlatformAlertKind = "evolution_down" | "database_down" | "supabase_down" | "mass_disconnect" | "missed_run";

/**
 * Kinds of tenant alerts (fingerprint `<kind>:<slug>`), derived in SQL from `maintenance.tenant_health`: its
 * primary issue, its flags, and `flapping` (from `tenant_health.flapping`).
 */
export type TenantAlertKind =
  | "instance_missing"
  | "instance_disconnected"
  | "logged_out"
  | "socket_dead"
  | "check_error"
  | "frequent_disconnections"
  | "zombie_suspected"
  | "flapping"
  /** A tenant its server's listing could not show: inhibited by that server's `evolution_down`, never notified. */
  | "evolution_unreachable";

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
  /** Tenant conditions seen in this run that do not fire yet (below the failure threshold, or held back by flapping). */
  pending: number;
  /** Whether platform alerts were evaluated (a full run); a scoped run leaves them as they are. */
  platformEvaluated: boolean;
  firing: number;
  inhibited: number;
  platform: string[];
}

/** Options of one evaluation. Thresholds left out come from `maintenance.settings`. */
export interface EvaluateOptions {
  /** Platform kinds evaluated in this run: a firing alert of such a kind that is not a candidate resolves. */
  platformKinds: PlatformAlertKind[];
  /**
   * Platform kinds whose check is configured (evaluated now or not): in a full run a firing alert of any other
   * kind resolves with the reason `check no longer configured` (`supabase_down` once `SUPABASE_URL` is unset).
   */
  configuredKinds?: PlatformAlertKind[];
  /** Tenants were checked in this run (their tenant_health rows carry the run id). */
  tenantsEvaluated: boolean;
  /** Look for mass disconnects, per server, in a full run (default: when tenants were evaluated). */
  massDetection?: boolean;
  /**
   * Every active tenant was checked. Only a full run raises, resolves or notifies platform alerts (a run scoped to
   * a few tenants cannot judge the platform, and its candidates are ignored); alerts of removed tenants resolve.
   */
  fullRun: boolean;
  channels: ChannelName[];
  repeatInterval?: string;
  share?: number;
  minTenants?: number;
  /** Bad checks in a row before a tenant alert fires (`alert_failure_threshold`). */
  failureThreshold?: number;
  /** Checks in a row without its condition before a tenant alert resolves (`alert_success_threshold`). */
  successThreshold?: number;
  /** The mass-disconnect window, a Postgres interval (`platform_incident_window`). */
  incidentWindow?: string;
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
