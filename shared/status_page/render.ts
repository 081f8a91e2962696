/**
 * @module
 * Renders the status page: one self-contained HTML document (inline CSS, inline SVG bars, no script, no external
 * asset). Every value that comes from a tenant, Evolution or the database goes through Hono's `html` template, which
 * escapes it; only the fixed CSS is inserted raw.
 */
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import {
  type AlertRow,
  BAR_BUCKETS,
  type JobRow,
  type Segment,
  type ServerRow,
  type ServiceHealth,
  type StatusData,
  type TenantRow,
} from "./data.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** The headline for each overall status. */
export const OVERALL_TEXT: Record<string, string> = {
  operational: "All systems operational",
  degraded: "Degraded",
  outage: "Outage",
  unknown: "Status unknown",
};

const CSS = `
:root{--ok:#1f9d55;--warn:#d97706;--bad:#dc2626;--unk:#9ca3af;--fg:#111827;--muted:#6b7280;--line:#e5e7eb}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0;background:#f9fafb}main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:20px;margin:8px 0 12px}h2{font-size:16px;margin:28px 0 8px}
.overall{border-radius:8px;padding:14px 18px;color:#fff;font-size:18px;font-weight:600}
.overall ul{margin:6px 0 0;padding-left:20px;font-size:13px;font-weight:400}
.overall-operational{background:var(--ok)}.overall-degraded{background:var(--warn)}
.overall-outage{background:var(--bad)}.overall-unknown{background:#4b5563}
.muted{color:var(--muted)}.meta{margin:6px 0 0;font-size:12px;color:var(--muted)}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:180px}
.card b{display:block;font-size:13px}.num{font-size:22px;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line);font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:middle}
th{background:#f3f4f6;font-weight:600}td.wrap{max-width:320px;overflow-wrap:anywhere}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;color:#fff}
.state-healthy,.st-healthy,.st-ok{background:var(--ok)}.state-degraded,.st-degraded,.st-warning{background:var(--warn)}
.state-unhealthy,.st-unhealthy,.st-error,.st-critical,.st-missed{background:var(--bad)}
.state-unknown,.st-unknown,.st-skipped,.st-running,.st-none{background:var(--unk)}
svg.bar{display:block;width:200px;height:14px;border-radius:2px;background:var(--unk)}
rect.seg-healthy{fill:var(--ok)}rect.seg-degraded{fill:var(--warn)}rect.seg-unhealthy{fill:var(--bad)}
rect.seg-unknown{fill:var(--unk)}.pct{font-size:12px;color:var(--muted)}
form.search{margin:0 0 8px}form.search input[type=search]{padding:4px 8px;width:260px}
`;

/** Formats a timestamp as `YYYY-MM-DD HH:MM UTC` ('–' when absent). */
export function formatTime(value: Date | string | null | undefined): string {
  if (!value) return "–";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return "–";
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** Formats a duration in seconds as `3 d 4 h`, `6 h 7 min`, `42 s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function since(asOf: Date, at: Date | string | null): string {
  if (!at) return "–";
  return formatDuration((asOf.getTime() - new Date(at).getTime()) / 1000);
}

function badge(state: string, text = state): Html {
  return html`<span class="badge st-${state}" data-state="${state}">${text}</span>`;
}

/** One availability bar: an SVG whose viewBox is the bucket count, one rect per segment. */
export function bar(window: "24h" | "7d", segments: Segment[] | null, availability: string | null): Html {
  const buckets = BAR_BUCKETS[window];
  const label = `${window === "24h" ? "24 h" : "7 days"}: ${percentText(availability)}`;
  const rects = (segments ?? []).map((s) =>
    html`
      <rect class="seg seg-${s.state}" data-state="${s.state}" x="${s.from}" y="0" width="${s.to - s.from}" height="1">
        <title>${s.state}: ${formatTime(s.start)} – ${formatTime(s.end)}</title>
      </rect>
    `
  );
  return html`
    <svg class="bar" data-window="${window}" data-buckets="${buckets}" viewBox="0 0 ${buckets} 1"
      preserveAspectRatio="none" role="img" aria-label="${label}">${rects}</svg><span class="pct"
      data-window="${window}">${percentText(availability)}</span>
  `;
}

/** The services the health check reports, in the order the page shows them: `[key, label]`. */
export const SERVICES: ReadonlyArray<readonly [string, string]> = [
  ["evolution_api", "Evolution API"],
  ["database", "Database"],
  ["supabase", "Supabase REST/Auth"],
];

/** A service card's detail line: latency, version, error or reason (`no health check recorded` when absent). */
export function serviceDetail(s: ServiceHealth | undefined): string {
  if (!s) return "no health check recorded";
  return [
    s.latencyMs !== undefined ? `${s.latencyMs} ms` : null,
    s.version ? `v${s.version}` : null,
    s.error ?? s.reason,
  ]
    .filter(Boolean).join(" · ");
}

/** A job's badge: its state (`missed`, `running`, the last run's status, `none`) and the text shown. */
export function jobBadge(j: JobRow): { state: string; text: string } {
  const state = j.missed ? "missed" : j.running ? "running" : j.last_run_status ?? "none";
  const text = j.missed ? "missed run" : j.running ? "running" : j.last_run_status ?? "never ran";
  return { state, text };
}

/** An availability percentage as the page prints it, always two decimals (`74.51%`, `74.50%`, `100.00%`), or
 * `no data`. Number() alone printed 74.50 as `74.5%`. */
export function percentText(availability: string | null): string {
  return availability === null ? "no data" : `${Number(availability).toFixed(2)}%`;
}

function servicesSection(data: StatusData): Html {
  const { summary } = data;
  const cards = SERVICES.map(([key, label]) => {
    const s = summary.services?.[key];
    const status = s?.status ?? "unknown";
    const detail = serviceDetail(s);
    return html`<div class="card service" data-service="${key}"><b>${label}</b>${badge(status)}
<div class="meta">${detail}</div></div>`;
  });
  const lc = summary.lastCheck;
  const last = lc
    ? html`Last health check ${formatTime(lc.startedAt)} (${formatDuration(lc.ageSeconds)} ago): ${badge(lc.status)}${
      lc.error
        ? html`
          <span class="muted">${lc.error}</span>
        `
        : ""
    }`
    : html`No health-check run recorded yet.`;
  return html`
    <h2>Services</h2>
    <div class="cards">${cards}</div>
    <p class="meta" id="last-check">${last}</p>
  `;
}

/** A server's detail line: version, latency, error (or why it was not asked). */
export function serverDetail(s: ServerRow): string {
  return [
    s.version ? `v${s.version}` : null,
    s.latency_ms !== null ? `${s.latency_ms} ms` : null,
    s.draining ? "draining" : null,
    s.error,
  ].filter(Boolean).join(" · ") || "–";
}

function serversSection(data: StatusData): Html | "" {
  const servers = data.servers ?? [];
  if (!servers.length) return "";
  const rows = servers.map((s) =>
    html`
      <tr class="server" data-server="${s.name}" data-state="${s.state}">
        <td>${s.name}${s.is_default
          ? html`
            <span class="muted">(default)</span>
          `
          : ""}</td>
        <td>${badge(s.state)}</td>
        <td>${s.tenants}</td>
        <td>${s.tenants_not_healthy}</td>
        <td class="wrap">${serverDetail(s)}</td>
        <td>${s.down_alert ?? "–"}</td>
      </tr>
    `
  );
  return html`
    <h2>Evolution servers (${servers.length})</h2>
    <table id="servers">
      <thead>
        <tr>
          <th>Server</th>
          <th>State</th>
          <th>Tenants</th>
          <th>Not healthy</th>
          <th>Version · latency · error</th>
          <th>Alert</th>
        </tr>
      </thead>
      <tbody>${rows}</tbody>
    </table>
  `;
}

function countsSection(data: StatusData): Html {
  const t = data.summary.tenants;
  const a = data.summary.alerts;
  const card = (key: string, label: string, n: number) =>
    html`<div class="card count" data-count="${key}"><b>${label}</b><span class="num">${n}</span></div>`;
  return html`<div class="cards">${card("healthy", "Healthy tenants", t.healthy)}${
    card("degraded", "Degraded", t.degraded)
  }${card("unhealthy", "Unhealthy", t.unhealthy)}${card("unknown", "Not checked yet", t.unknown)}${
    card("alerts", "Firing alerts", a.firing)
  }</div>`;
}

function alertsSection(asOf: Date, data: StatusData): Html {
  const rows = data.alerts.map((a: AlertRow) =>
    html`
      <tr data-fingerprint="${a.fingerprint}">
        <td>${badge(a.severity)}</td>
        <td class="wrap">${a.summary}</td>
        <td>${a.tenant_slug ?? html`<span class="muted">platform</span>`}</td>
        <td>${formatTime(a.started_at)}</td>
        <td>${since(asOf, a.started_at)}</td>
        <td>${a.inhibited_by ? html`silenced by ${a.inhibited_by}` : "–"}</td>
      </tr>
    `
  );
  const more = data.alertTotal > data.alerts.length
    ? html`<p class="meta">Showing ${data.alerts.length} of ${data.alertTotal} firing alerts.</p>`
    : "";
  return html`<h2>Open alerts (${data.alertTotal})</h2>${
    rows.length
      ? html`
        <table id="alerts">
          <thead>
            <tr>
              <th>Severity</th>
              <th>Alert</th>
              <th>Tenant</th>
              <th>Since</th>
              <th>For</th>
              <th>Notification</th>
            </tr>
          </thead>
          <tbody>${rows}</tbody>
        </table>${more}
      `
      : html`<p class="muted" id="alerts">No alert is firing.</p>`
  }`;
}

function tenantsSection(asOf: Date, data: StatusData, opts: { search?: string; token?: string; limit: number }): Html {
  const rows = data.tenants.map((t: TenantRow) =>
    html`
      <tr class="tenant" data-slug="${t.tenant_slug}" data-state="${t.state}">
        <td class="wrap"><span class="tenant-name">${t.tenant_name ??
          t.tenant_slug}</span><br><span class="muted slug">${t.tenant_slug}</span></td>
        <td>${badge(t.state)}</td>
        <td>${t.since ? html`${since(asOf, t.since)}<br><span class="muted">${formatTime(t.since)}</span>` : "–"}</td>
        <td class="wrap issue">${t.issue ?? "–"}</td>
        <td>${formatTime(t.last_checked_at)}</td>
        <td>${formatTime(t.last_event_at)}</td>
        <td>${t.open_alerts}</td>
        <td>${bar("24h", t.segments_24h, t.availability_24h)}</td>
        <td>${bar("7d", t.segments_7d, t.availability_7d)}</td>
      </tr>
    `
  );
  const shown = data.tenants.length;
  const scope = opts.search
    ? html`
      matching “${opts.search}”
    `
    : "";
  return html`
    <h2>Tenants</h2>
    <form class="search"
      method="get">${opts.token
        ? html`<input type="hidden" name="token" value="${opts.token}">`
        : ""}<input type="search" name="q" value="${opts.search ??
        ""}" placeholder="slug or name" aria-label="Search tenants">
    <input type="hidden" name="limit" value="${opts.limit}"> <button type="submit">Search</button></form>
    <p class="meta"
      id="tenant-count">Showing ${shown} of ${data
        .tenantTotal} active tenants${scope}, worst first.${shown < data.tenantTotal
        ? " Search, or raise ?limit= (up to 2000), to see the others."
        : ""}</p>${shown
        ? html`
          <table id="tenants">
            <thead>
              <tr>
                <th>Tenant</th>
                <th>State</th>
                <th>For</th>
                <th>Issue</th>
                <th>Last check</th>
                <th>Last webhook event</th>
                <th>Alerts</th>
                <th>Last 24 h</th>
                <th>Last 7 days</th>
              </tr>
            </thead>
            <tbody>${rows}</tbody>
          </table>
        `
        : html`<p class="muted">No tenant to show.</p>`}
  `;
}

function jobsSection(asOf: Date, data: StatusData): Html {
  const rows = data.jobs.map((j: JobRow) => {
    const { state, text } = jobBadge(j);
    return html`
      <tr class="job" data-job="${j.job}" data-missed="${String(j.missed)}">
        <td>${j.job}</td>
        <td><code>${j.schedule ?? "not scheduled"}</code>${j.active === false
          ? html`
            <span class="muted">(paused)</span>
          `
          : ""}</td>
        <td>${badge(state, text)}</td>
        <td>${formatTime(j.last_run_at)}${j.last_run_at
          ? html`<br><span class="muted">${since(asOf, j.last_run_at)} ago${
            j.last_run_duration_ms !== null ? `, ${j.last_run_duration_ms} ms` : ""
          }</span>`
          : ""}</td>
        <td>${formatTime(j.last_success_at)}</td>
        <td>${formatTime(j.next_due_at)}</td>
        <td class="wrap">${j.last_run_error ??
          (j.missed ? `should have succeeded by ${formatTime(j.expected_by)}` : "–")}</td>
      </tr>
    `;
  });
  return html`
    <h2>Jobs</h2>
    <table id="jobs">
      <thead>
        <tr>
          <th>Job</th>
          <th>Schedule (UTC)</th>
          <th>Status</th>
          <th>Last run</th>
          <th>Last success</th>
          <th>Next due</th>
          <th>Notes</th>
        </tr>
      </thead>
      <tbody>${rows}</tbody>
    </table>
  `;
}

/** The whole page. `token` (only when it came in the query string) is kept in the search form. */
export function renderPage(
  data: StatusData,
  opts: { asOf: Date; search?: string; token?: string; limit: number; refreshSeconds?: number },
): Html {
  const s = data.summary;
  const reasons = s.reasons.length ? html`<ul>${s.reasons.map((r) => html`<li>${r}</li>`)}</ul>` : "";
  return html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <meta http-equiv="refresh" content="${opts.refreshSeconds ?? 60}">
        <title>${OVERALL_TEXT[s.overall] ?? s.overall} · WhatsApp status</title>
        <style>${raw(CSS)}</style>
      </head>
      <body>
        <main>
    <h1>WhatsApp channels status</h1>
    <section class="overall overall-${s.overall}" id="overall" data-overall="${s.overall}">${OVERALL_TEXT[s.overall] ??
      s.overall}${reasons}</section>
    <p class="meta">As of ${formatTime(opts.asOf)} · refreshes every ${opts.refreshSeconds ?? 60} s</p>
    ${countsSection(data)}${servicesSection(data)}${serversSection(data)}${alertsSection(
      opts.asOf,
      data,
    )}${tenantsSection(
      opts.asOf,
      data,
      opts,
    )}${jobsSection(opts.asOf, data)}
        </main>
      </body>
    </html>
  `;
}
