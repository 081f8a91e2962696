// The `health-check` scheduled function: parse config, build dependencies, serve the job's app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createJobApp } from "../../../shared/jobs/app.ts";
import { healthCheck } from "../../../shared/jobs/health_check.ts";

Deno.serve(createJobApp(healthCheck, buildDeps(loadConfig())).fetch);
