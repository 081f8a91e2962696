// The `cleanup-logs` scheduled function: parse config, build dependencies, serve the job's app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createJobApp } from "../../../shared/jobs/app.ts";
import { cleanupLogs } from "../../../shared/jobs/cleanup_logs.ts";

Deno.serve(createJobApp(cleanupLogs, buildDeps(loadConfig())).fetch);
