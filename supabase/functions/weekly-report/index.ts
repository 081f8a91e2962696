// The `weekly-report` scheduled function: parse config, build dependencies, serve the job's app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createJobApp } from "../../../shared/jobs/app.ts";
import { weeklyReport } from "../../../shared/jobs/weekly_report.ts";

Deno.serve(createJobApp(weeklyReport, buildDeps(loadConfig())).fetch);
