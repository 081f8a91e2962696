/**
 * @module
 * A stand-in fleet for `bench/fleet.ts`, in a process of its own (its memory is not the health check's): `servers`
 * Evolution servers on one port, server k at `/s<k>`, each answering `GET /` (2.3.7), an unfiltered
 * `fetchInstances` with 2.x rows of realistic size (a connected instance's Prisma row with its relations, about
 * 1.3 KB: the simulator's `rowV2` shape) prepared once, `connectionState` and the liveness probe (`open` / 200).
 * Server k holds the instances `<instancePrefix><prefix><i>` for i ≡ k (mod servers), i < tenants.
 *
 *   deno run -A bench/fleet_listing_server.ts <port> <servers> <tenants> <instancePrefix><prefix> <apiKey>
 */
const [portArg, serversArg, tenantsArg, namePrefix, apiKey] = Deno.args;
const servers = Number(serversArg), tenants = Number(tenantsArg);

function row(name: string, i: number) {
  const id = crypto.randomUUID();
  const at = new Date(Date.UTC(2026, 10, 1, 0, 0, i % 3600)).toISOString();
  return {
    id,
    name,
    connectionStatus: "open",
    ownerJid: `5511${String(900000000 + i).padStart(9, "0")}@s.whatsapp.net`,
    profileName: `Loja ${i} – Atendimento`,
    profilePicUrl: `https://pps.whatsapp.net/v/t61.24694-24/${400000000 + i}_${
      id.replaceAll("-", "")
    }_n.jpg?ccb=11-4&oh=01_Q5AaIExample${i}&oe=6761A2B3&_nc_sid=5e03e0&_nc_cat=104`,
    integration: "WHATSAPP-BAILEYS",
    number: `5511${String(900000000 + i).padStart(9, "0")}`,
    businessId: null,
    token: crypto.randomUUID().toUpperCase(),
    clientName: "evolution",
    disconnectionReasonCode: null,
    disconnectionObject: null,
    disconnectionAt: null,
    createdAt: at,
    updatedAt: at,
    Chatwoot: null,
    Proxy: null,
    Rabbitmq: null,
    Nats: null,
    Sqs: null,
    Websocket: null,
    Setting: {
      id: crypto.randomUUID(),
      rejectCall: false,
      msgCall: "",
      groupsIgnore: true,
      alwaysOnline: false,
      readMessages: false,
      readStatus: false,
      syncFullHistory: false,
      wavoipToken: "",
      createdAt: at,
      updatedAt: at,
      instanceId: id,
    },
    _count: { Message: 10000 + (i * 7919) % 90000, Contact: 100 + (i * 31) % 900, Chat: 50 + (i * 17) % 400 },
  };
}

const encoder = new TextEncoder();
const bodies: Uint8Array<ArrayBuffer>[] = [];
for (let k = 0; k < servers; k++) {
  const rows = [];
  for (let i = k; i < tenants; i += servers) rows.push(row(`${namePrefix}${i}`, i));
  bodies.push(encoder.encode(JSON.stringify(rows)));
}
const info = encoder.encode(JSON.stringify({
  status: 200,
  message: "Welcome to the Evolution API, it is working!",
  version: "2.3.7",
  clientName: "evolution",
}));
const bytes = bodies.reduce((n, b) => n + b.length, 0);

Deno.serve({ port: Number(portArg), hostname: "127.0.0.1", onListen() {} }, (req) => {
  if (req.headers.get("apikey") !== apiKey) {
    return Response.json({ status: 401, error: "Unauthorized", response: { message: "Unauthorized" } }, {
      status: 401,
    });
  }
  const url = new URL(req.url);
  const m = url.pathname.match(/^\/s(\d+)(\/.*)?$/);
  const k = m ? Number(m[1]) : -1;
  if (!m || k >= servers) return new Response("not found", { status: 404 });
  const path = m[2] ?? "/";
  const json = { "content-type": "application/json" };
  if (path === "/" || path === "") return new Response(info, { headers: json });
  if (path === "/instance/fetchInstances" && !url.search) return new Response(bodies[k], { headers: json });
  const state = path.match(/^\/instance\/connectionState\/(.+)$/);
  if (state) {
    return Response.json({ instance: { instanceName: decodeURIComponent(state[1]), state: "open" } });
  }
  if (path.startsWith("/chat/fetchBusinessProfile/")) return Response.json({ isBusiness: false });
  return new Response(JSON.stringify({ status: 404, error: "Not Found", response: { message: ["not found"] } }), {
    status: 404,
    headers: json,
  });
});
console.log(JSON.stringify({ ready: true, bytes, perRow: Math.round(bytes / Math.max(1, tenants)) }));
