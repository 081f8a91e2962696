// The `metrics` function: parse config, build dependencies, serve the app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createMetricsApp } from "../../../shared/metrics/app.ts";

Deno.serve(createMetricsApp(buildDeps(loadConfig())).fetch);
