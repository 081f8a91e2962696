/** Evolution API simulator (placeholder until the Evolution issue lands: `GET /` only). */
const port = Number(Deno.env.get("EVOLUTION_PORT") ?? "8080");
Deno.serve({ hostname: "127.0.0.1", port }, (req) => {
  if (new URL(req.url).pathname === "/") {
    return Response.json({ status: 200, message: "Welcome to the Evolution API, it is working!", version: "2.3.7" });
  }
  return Response.json({ status: 404, error: "Not Found", response: { message: ["Cannot " + req.method] } }, {
    status: 404,
  });
});
