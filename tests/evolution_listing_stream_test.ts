// The listing read as a stream (EvolutionClient.listInstances, shared/evolution/json_stream.ts): the incremental
// reader hands over exactly what JSON.parse reads, whatever the chunk boundaries (inside strings, escapes, multi-byte
// characters), refuses what JSON.parse refuses; and a simulator listing with rows of realistic size, in 2.3.7 and
// 1.8.6 shapes, gives the same summaries as the non-streaming fetchInstances(), in one call.
import assert from "node:assert/strict";
import { type SimVersion, startSimulator } from "../dev/evolution_sim/app.ts";
import { EvolutionClient, EvolutionError } from "../shared/evolution/client.ts";
import { JsonStreamError, readJsonArray } from "../shared/evolution/json_stream.ts";
import { testConfig } from "./_helpers.ts";

/** `text` as a stream of UTF-8 chunks of `size` bytes (cut anywhere, multi-byte characters included). */
function chunked(text: string, size: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

async function readAll(text: string, size: number) {
  const items: unknown[] = [];
  const out = await readJsonArray(chunked(text, size), (v) => items.push(v));
  return { out, items };
}

Deno.test("readJsonArray() hands over each element as JSON.parse reads it, whatever the chunk boundaries", async () => {
  const doc = [
    { name: "a", s: 'quote " backslash \\ slash / brackets ] } [ { comma , colon :', n: -1.5e3, t: true, z: null },
    { name: "é ü 日本 🎉", nested: [[1, [2, { x: "]" }]], { y: "\\\\" }], empty: {}, list: [] },
    "a string element, with a comma",
    42,
    [1, 2, [3]],
    null,
    { esc: '\u0001\n\t"\\', u: "\\u0041 is not an escape here" },
  ];
  const text = ` \n${JSON.stringify(doc, null, 1)}\n `;
  for (const size of [1, 2, 3, 5, 7, 16, 64, 1 << 16]) {
    const { out, items } = await readAll(text, size);
    assert.deepEqual(out, { root: "array", items: doc.length }, `chunks of ${size}`);
    assert.deepEqual(items, JSON.parse(text), `chunks of ${size}`);
  }
  for (const empty of ["[]", " [ ] ", "[\n]"]) {
    assert.deepEqual((await readAll(empty, 1)).out, { root: "array", items: 0 });
  }
  const single = { instance: { instanceName: "revalya-x", status: "open" } };
  for (const size of [1, 4, 100]) {
    assert.deepEqual((await readAll(JSON.stringify(single), size)).out, { root: "value", value: single });
  }
});

Deno.test("readJsonArray() refuses what is not one JSON array, and stops at an error of the caller", async () => {
  const bad = ["", "   ", "[1,]", "[,1]", "[1 2]", "[1,2", '["open', "[1]x", "[1]]", '{"a":', "[{]", "[1,,2]"];
  for (const text of bad) {
    for (const size of [1, 3, 100]) {
      await assert.rejects(readAll(text, size), JsonStreamError, `${JSON.stringify(text)} in chunks of ${size}`);
    }
  }
  const invalidUtf8 = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array([0x5b, 0x22, 0xff, 0x22, 0x5d])); // ["<0xff>"]
      c.close();
    },
  });
  await assert.rejects(readJsonArray(invalidUtf8, () => {}), JsonStreamError);
  let seen = 0;
  await assert.rejects(
    readJsonArray(chunked("[1,2,3,4]", 1), () => {
      if (++seen === 2) throw new RangeError("enough");
    }),
    RangeError,
  );
  assert.equal(seen, 2, "nothing is handed over after the caller's error");
});

function clientFor(url: string, apiKey: string) {
  return new EvolutionClient(testConfig({ EVOLUTION_API_URL: url, EVOLUTION_API_KEY: apiKey }), {
    retry: { retries: 0 },
  });
}

for (const version of ["2.3.7", "1.8.6"] as const satisfies readonly SimVersion[]) {
  Deno.test(`EvolutionClient.listInstances() (${version}) gives the same summaries as fetchInstances(), rows of realistic size`, async () => {
    const sim = await startSimulator({ port: 0, version });
    try {
      const n = 600;
      const states = ["open", "close", "connecting"] as const;
      sim.control.seedInstances(
        Array.from({ length: n }, (_, i) => [`revalya-stream-${i}`, { state: states[i % 3] }] as [string, never]),
      );
      // the body as Evolution sends it: its rows' size is what the stream reader must cope with
      const raw = await fetch(`${sim.url}/instance/fetchInstances`, { headers: { apikey: sim.apiKey } });
      const text = await raw.text();
      const rows = JSON.parse(text) as unknown[];
      assert.equal(rows.length, n);
      const perRow = new TextEncoder().encode(text).length / n;
      if (version === "2.3.7") assert.ok(perRow >= 1000, `2.x rows of 1–2 KB (${Math.round(perRow)} bytes here)`);

      const streamed = await clientFor(sim.url, sim.apiKey).listInstances();
      const whole = await clientFor(sim.url, sim.apiKey).fetchInstances();
      assert.equal(streamed.length, n);
      assert.equal(streamed.total, n);
      assert.deepEqual(streamed, whole, "the same summaries, in the same order");
      // a shard keeps its own tenants' rows only, and still counts every row listed
      const mine = new Set(["revalya-stream-7", "revalya-stream-300", "revalya-stream-599", "revalya-nobody"]);
      const kept = await clientFor(sim.url, sim.apiKey).listInstances({ keep: (name) => mine.has(name) });
      assert.deepEqual(kept.map((s) => s.name), ["revalya-stream-7", "revalya-stream-300", "revalya-stream-599"]);
      assert.deepEqual(kept, whole.filter((s) => mine.has(s.name)));
      assert.equal(kept.total, n);
      assert.deepEqual(
        new Set(streamed.map((s) => s.state)),
        new Set(version === "2.3.7" ? ["open", "close", "connecting"] : ["open", "close", "connecting"]),
      );
      sim.control.resetStats();
      await clientFor(sim.url, sim.apiKey).listInstances();
      assert.equal(sim.control.stats().calls.fetchInstances, 1, "one call");
    } finally {
      await sim.close();
    }
  });
}

Deno.test("EvolutionClient.listInstances() maps a broken answer to bad_response and a dead server to unreachable", async () => {
  const bodies: Record<string, string> = {
    "/truncated/instance/fetchInstances": '[{"name":"revalya-a","connectionStatus":"open"},{"name":"rev',
    "/notjson/instance/fetchInstances": "<html>gateway</html>",
    "/badrow/instance/fetchInstances": '[{"name":"revalya-a","connectionStatus":"open"},{"connectionStatus":1}]',
  };
  const server = Deno.serve({ port: 0, onListen() {} }, (req) => {
    const body = bodies[new URL(req.url).pathname];
    return body ? new Response(body, { headers: { "content-type": "application/json" } }) : new Response("", {
      status: 404,
    });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    for (const path of ["/truncated", "/notjson", "/badrow"]) {
      await assert.rejects(clientFor(`${base}${path}`, "k").listInstances(), (e: unknown) => {
        assert.ok(e instanceof EvolutionError, String(e));
        assert.equal(e.code, "bad_response", `${path}: ${e.message}`);
        assert.equal(e.status, 200);
        return true;
      });
    }
    await assert.rejects(clientFor("http://127.0.0.1:1", "k").listInstances(), (e: unknown) => {
      assert.ok(e instanceof EvolutionError);
      assert.equal(e.code, "unreachable");
      return true;
    });
  } finally {
    await server.shutdown();
  }
});
