/**
 * @module
 * The bad-input matrix's cases: hostile slugs, body-level cases every JSON function gets, slug-list and slug cases,
 * and the cases of every job of the registry, generated from its input schema (so a job added to the registry is in
 * the matrix with nothing written here).
 */
import type { z } from "zod";
import type { JobDefinition } from "../../shared/jobs/runner.ts";

/** Slugs that must never be accepted anywhere a slug enters. */
export const BAD_SLUGS: Array<[string, string]> = [
  ["path traversal '../x'", "../x"],
  ["encoded slash 'a%2Fb'", "a%2Fb"],
  ["upper case 'ACME'", "ACME"],
  ["Cyrillic look-alike 'асme'", "\u0430\u0441me"],
  ["10,000 characters", "a".repeat(10_000)],
  ["SQL metacharacters", "'; drop table tenants; --"],
  ["empty string", ""],
  ["trailing hyphen 'acme-'", "acme-"],
];

export interface Case {
  name: string;
  /** Raw body (default: JSON of `json`). */
  body?: BodyInit | null;
  json?: unknown;
  /** Content type (default application/json; null = none). */
  type?: string | null;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  status?: number;
  names: RegExp;
  /** Expected row-count changes (default none). */
  delta?: Record<string, number>;
}

const FIVE_MB = JSON.stringify({ pad: "x".repeat(5 * 1024 * 1024) });

/** The body-level cases every JSON function gets, around a valid body `base`. */
export function bodyCases(base: Record<string, unknown>): Case[] {
  return [
    { name: "invalid JSON", body: '{"slug": ', status: 400, names: /Invalid JSON/ },
    {
      name: "wrong content type (text/plain)",
      body: JSON.stringify(base),
      type: "text/plain",
      status: 415,
      names: /content type/,
    },
    {
      name: "wrong content type (form)",
      body: "slug=acme",
      type: "application/x-www-form-urlencoded",
      status: 415,
      names: /content type/,
    },
    { name: "no content type", body: JSON.stringify(base), type: null, status: 415, names: /content type/ },
    { name: "5 MB body", body: FIVE_MB, status: 413, names: /too large/ },
    { name: "JSON array body", json: [base], status: 400, names: /\(body\)/ },
    { name: "JSON null body", body: "null", status: 400, names: /\(body\)/ },
    { name: "JSON string body", json: "slug", status: 400, names: /\(body\)/ },
    { name: "not UTF-8", body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), status: 400, names: /UTF-8/ },
    { name: "extra field", json: { ...base, bogus: 1 }, status: 400, names: /bogus/ },
    {
      name: "extra field with SQL",
      json: { ...base, "'; drop table tenants; --": 1 },
      status: 400,
      names: /drop table/,
    },
    { name: "GET instead of POST", method: "GET", body: null, status: 404, names: /No route GET/ },
  ];
}

/** Cases of a field that takes a list of slugs. */
export function slugListCases(field: string, base: Record<string, unknown> = {}): Case[] {
  return [
    ...BAD_SLUGS.map(([n, v]): Case => ({
      name: `'${field}' with ${n}`,
      json: { ...base, [field]: [v] },
      status: 400,
      names: new RegExp(`'${field}\\.0'`),
    })),
    {
      name: `'${field}' not an array`,
      json: { ...base, [field]: "acme" },
      status: 400,
      names: new RegExp(`'${field}'`),
    },
    { name: `'${field}' empty`, json: { ...base, [field]: [] }, status: 400, names: new RegExp(`'${field}'`) },
    {
      name: `'${field}' with 5,001 slugs`,
      json: { ...base, [field]: Array.from({ length: 5001 }, (_, i) => `t-${i}`) },
      status: 400,
      names: new RegExp(`'${field}'`),
    },
    {
      name: `'${field}' with a number`,
      json: { ...base, [field]: [42] },
      status: 400,
      names: new RegExp(`'${field}\\.0'`),
    },
  ];
}

/** Cases of a `slug` field in an ops body. */
export function slugCases(base: Record<string, unknown>): Case[] {
  const { slug: _s, ...rest } = base;
  return [
    ...BAD_SLUGS.map(([n, v]): Case => ({
      name: `slug ${n}`,
      json: { ...base, slug: v },
      status: 400,
      names: /'slug'/,
    })),
    { name: "slug missing", json: rest, status: 400, names: /'slug'/ },
    { name: "slug a number", json: { ...base, slug: 42 }, status: 400, names: /'slug'/ },
    { name: "slug null", json: { ...base, slug: null }, status: 400, names: /'slug'/ },
    { name: "slug an object", json: { ...base, slug: { $ne: "" } }, status: 400, names: /'slug'/ },
    { name: "empty body (slug missing)", body: "", status: 400, names: /'slug'/ },
    { name: "unknown tenant", json: { ...base, slug: "no-such-tenant-r9" }, status: 404, names: /no-such-tenant-r9/ },
  ];
}

export const field = (name: string, value: unknown, base: Record<string, unknown> = {}): Case => ({
  name: `'${name}' = ${JSON.stringify(value)?.slice(0, 40)}`,
  json: { ...base, [name]: value },
  status: 400,
  names: new RegExp(`'${name.replace(/\./g, "\\.")}'`),
});

/** What a field of a zod schema is once its default / optional wrappers are off. */
// deno-lint-ignore no-explicit-any
function unwrap(schema: any): any {
  let t = schema;
  while (["default", "optional", "nullable", "prefault"].includes(t.def.type)) t = t.def.innerType;
  return t;
}

/**
 * The bad values of every field of a job's input, read from the schema itself, so a job added to the registry is
 * in the matrix with nothing written here: wrong types (a string for a boolean or a number, SQL in a number), null,
 * numbers just outside the bounds or huge, fractions for integers, and the slug-list cases for a list of slugs.
 */
export function schemaCases(schema: z.ZodObject, base: Record<string, unknown>): Case[] {
  const cases: Case[] = [];
  for (const [name, fieldSchema] of Object.entries(schema.shape)) {
    const t = unwrap(fieldSchema);
    const values: unknown[] = [];
    if (t.def.type === "boolean") values.push("true", "false", 1, 0, null);
    else if (t.def.type === "number") {
      values.push(String(t.minValue ?? 1), null, "'; drop table tenants; --");
      if (t.isInt) values.push(1.5);
      if (Number.isFinite(t.minValue)) values.push(t.minValue - 1);
      if (Number.isFinite(t.maxValue)) values.push(t.maxValue + 1);
      if (!Number.isFinite(t.maxValue) || t.maxValue < 1e9) values.push(1e9);
    } else if (t.def.type === "array" && unwrap(t.def.element).def.type === "string") {
      cases.push(...slugListCases(name, base));
      continue;
    } else if (t.def.type === "string") values.push(42, "x".repeat(10_000));
    else if (t.def.type === "object") values.push("x", 42, [], null);
    else throw new Error(`no bad values known for field '${name}' of type ${t.def.type}: teach schemaCases()`);
    cases.push(...values.map((v) => field(name, v, base)));
  }
  return cases;
}

/** The runner's own field, on every job. */
export const TRIGGER_CASES = [field("trigger", "hacker"), field("trigger", 42), field("trigger", "x".repeat(10_000))];

/** A job's cases: the body cases around its sample input, then its fields' cases, then the runner's field's. */
export function jobCases(def: JobDefinition): Case[] {
  const base = def.sampleInput as Record<string, unknown>;
  return [...bodyCases(base), ...schemaCases(def.input, base), ...TRIGGER_CASES];
}
