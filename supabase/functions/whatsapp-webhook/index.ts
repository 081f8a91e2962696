// The `whatsapp-webhook` function: parse config, build dependencies, serve the app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createWebhookApp } from "../../../shared/webhook/app.ts";

Deno.serve(createWebhookApp(buildDeps(loadConfig())).fetch);
