/**
 * @module
 * Routes that go through the WhatsApp socket (contract §3.11, §3.13): `POST /message/sendText`, the liveness probe
 * `POST /chat/fetchBusinessProfile` and `POST /chat/whatsappNumbers`. On a socket that is not open (a dead one
 * included) they fail with Baileys' "Connection Closed", in the shape each route gives it.
 */
import type { Hono } from "hono";
import { envelope, type Handler, noMemory, stringError, withBody } from "./http.ts";
import type { Ctx, Inst } from "./state.ts";
import type { RouteName } from "./types.ts";

type Api = (route: RouteName, handler: Handler) => Handler;

/** Baileys' Boom for a closed socket, as `whatsappNumbers` serialises it. */
const BOOM_CLOSED = {
  data: null,
  isBoom: true,
  isServer: false,
  output: {
    statusCode: 428,
    payload: { statusCode: 428, error: "Precondition Required", message: "Connection Closed" },
    headers: {},
  },
};

const live = (inst: Inst) => inst.state === "open" && !inst.dead;
const digitsOf = (n: string) => n.replace(/@.*$/, "").replace(/\D/g, "");
const exists = (digits: string) => digits.length >= 8;

export function chatRoutes(app: Hono, ctx: Ctx, api: Api): void {
  const { cfg } = ctx;
  app.post(
    "/message/sendText/:instance",
    api(
      "sendText",
      withBody(ctx, (_c, inst, b) => {
        const text = cfg.v1 ? (b.textMessage as { text?: unknown } | undefined)?.text : b.text;
        if (typeof b.number !== "string") return envelope(400, ['instance requires property "number"']);
        if (typeof text !== "string") {
          return envelope(400, [`instance requires property "${cfg.v1 ? "textMessage" : "text"}"`]);
        }
        if (!inst.inMemory) return noMemory("textMessage");
        const digits = digitsOf(b.number);
        if (!live(inst)) {
          // The recipient check runs outside the send's try: an uncached number meets the socket first (a bare
          // Boom, 500 string); a cached one fails inside the send (400 array).
          return inst.knownNumbers.has(digits)
            ? envelope(400, ["Error: Connection Closed"])
            : stringError("Connection Closed");
        }
        if (!exists(digits)) {
          return envelope(400, [{ jid: `${digits}@s.whatsapp.net`, exists: false, number: b.number }]);
        }
        inst.knownNumbers.add(digits);
        inst.counts.Message++;
        const message = {
          key: { remoteJid: `${digits}@s.whatsapp.net`, fromMe: true, id: crypto.randomUUID().replace(/-/g, "") },
          pushName: "",
          status: "PENDING",
          message: { conversation: text },
          messageType: "conversation",
          messageTimestamp: Math.floor(Date.now() / 1000),
          instanceId: inst.id,
          source: "unknown",
        };
        void ctx.emit(inst, "send.message", message);
        return Response.json(message, { status: 201 });
      }),
    ),
  );

  app.post(
    "/chat/fetchBusinessProfile/:instance",
    api(
      "fetchBusinessProfile",
      withBody(ctx, (_c, inst, b) => {
        if (!inst.inMemory) return noMemory("fetchBusinessProfile");
        // One IQ over the socket (`getBusinessProfile`), no cache: the catch reuses the profile-name message.
        if (!live(inst)) return envelope(500, ["Error updating profile name", "Error: Connection Closed"]);
        const jid = typeof b.number === "string" && b.number ? `${digitsOf(b.number)}@s.whatsapp.net` : inst.ownerJid;
        return Response.json({
          isBusiness: false,
          message: "Not is business profile",
          jid,
          exists: exists(digitsOf(jid ?? "")),
          number: jid,
        });
      }),
    ),
  );

  app.post(
    "/chat/whatsappNumbers/:instance",
    api(
      "whatsappNumbers",
      withBody(ctx, (_c, inst, b) => {
        if (!Array.isArray(b.numbers)) return envelope(400, ['instance requires property "numbers"']);
        if (!inst.inMemory) return noMemory("whatsappNumber");
        const numbers = b.numbers.map(String);
        // Cached numbers are answered without the socket; any other needs it.
        const cached = numbers.every((n) => inst.knownNumbers.has(digitsOf(n)));
        if (!live(inst) && !cached) return Response.json(BOOM_CLOSED, { status: 400 });
        return Response.json(numbers.map((n) => {
          const d = digitsOf(n);
          if (exists(d)) inst.knownNumbers.add(d);
          return { jid: `${d}@s.whatsapp.net`, exists: exists(d), number: n };
        }));
      }),
    ),
  );
}
