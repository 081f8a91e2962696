// The `status-page` function: parse config, build dependencies, serve the app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createStatusPageApp } from "../../../shared/status_page/app.ts";

Deno.serve(createStatusPageApp(buildDeps(loadConfig())).fetch);
