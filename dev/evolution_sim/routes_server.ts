/**
 * @module
 * Server routes: `GET /` (contract §3.1: on 2.3.x it looks the WhatsApp Web version up outside on every call, with
 * no timeout; 2.4.0 caches it for an hour; 1.8 makes no outside call), and 2.4.0's licence-free `/health`,
 * `/server/ok` and `/license/status` (bodies inferred).
 */
import type { Hono } from "hono";
import { WA_WEB_VERSION, WA_WEB_VERSION_BUNDLED } from "./config.ts";
import { gone, type Handler } from "./http.ts";
import { infoBody } from "./shapes.ts";
import type { Ctx } from "./state.ts";
import type { OutboundMode, RouteName } from "./types.ts";

type Api = (route: RouteName, handler: Handler) => Handler;

/** How long the outside lookup takes in each mode unless a control gave a duration. */
export function outboundMs(ctx: Ctx, mode: OutboundMode, ms?: number): number {
  if (ms !== undefined) return Math.max(0, ms);
  switch (mode) {
    case "ok":
      return ctx.cfg.infoLatencyMs;
    case "slow":
      return 10_000;
    case "refused":
      return 5;
    case "dropped":
      // web.whatsapp.com, then raw.githubusercontent.com: each waits for the OS's TCP connect timeout.
      return 2 * ctx.cfg.tcpConnectTimeoutMs;
  }
}

/** `fetchLatestWaWebVersion`: the version found, or the one bundled with Baileys when both lookups fail. */
async function lookUpWaVersion(ctx: Ctx, signal?: AbortSignal): Promise<string> {
  await ctx.clock.sleep(ctx.live.outboundMs, signal);
  const mode = ctx.live.outbound;
  return mode === "ok" || mode === "slow" ? WA_WEB_VERSION : WA_WEB_VERSION_BUNDLED;
}

export function serverRoutes(app: Hono, ctx: Ctx, api: Api): void {
  const { cfg, rt } = ctx;
  app.get(
    "/",
    api("info", async (c) => {
      if (cfg.v1) return Response.json(infoBody(ctx));
      const fresh = rt.infoFetchedAt !== null && Date.now() - rt.infoFetchedAt < cfg.infoCacheMs;
      if (cfg.v24 && fresh) return Response.json(infoBody(ctx));
      const version = await lookUpWaVersion(ctx, gone(c));
      if (cfg.v24) rt.infoFetchedAt = Date.now();
      return Response.json(infoBody(ctx, version));
    }),
  );
  if (!cfg.v24) return;
  app.get("/health", api("health", () => Response.json({ status: "ok" })));
  app.get("/server/ok", api("health", () => Response.json({ status: "ok" })));
  app.get(
    "/license/status",
    api(
      "license",
      () => Response.json({ status: ctx.live.licensed ? "active" : "inactive", instance_id: ctx.serverId }),
    ),
  );
}
