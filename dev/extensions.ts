/**
 * @module
 * The real Supabase pieces the local stack needs and Debian does not package: pg_net 0.20.5 and supabase_vault 0.3.1
 * (built from their pinned source releases and installed into the system's Postgres 15), and Supabase's own role,
 * grant and extension set-up SQL (unpacked into the user's cache, read by dev/stack.ts when it creates a cluster).
 *
 * Where a source comes from, in order:
 * 1. `$CANAIS_MIRROR_DIR/<archive>`: an offline mirror (CI points it at a folder holding the three archives); the
 *    file's sha256 must equal the pinned one.
 * 2. `~/.cache/canais-sources/<archive>`: a copy downloaded earlier.
 * 3. The pinned GitHub URL. GitHub's tarball is not byte-identical to a `git archive` of the same tag, so a download
 *    is verified by its contents instead: the digest of every file it holds (see {@link treeDigest}).
 * Every archive, wherever it came from, is also checked by that content digest after unpacking, so a mirror file
 * and a download are held to the same pinned bytes. Nothing here falls back to a stand-in: without a source the
 * command fails and says how to provide one.
 *
 *   deno run -A dev/extensions.ts ensure     build + install what is missing (root), unpack the role SQL
 *   deno run -A dev/extensions.ts status     what is installed, as JSON
 */
import { exists, run } from "./sh.ts";

/** One pinned source release. */
export interface Source {
  /** Extension name (`pg_net`, `supabase_vault`) or `supabase-postgres-roles` for the SQL. */
  name: string;
  /** The release tag (or commit) the archive was made from. */
  tag: string;
  commit: string;
  /** File name in the mirror and in the download cache. */
  archive: string;
  /** sha256 of the mirror's archive file (a `git archive` of the tag). */
  archiveSha256: string;
  /** Where to download it from when no mirror is given. */
  url: string;
  /** {@link treeDigest} of the unpacked archive (of `files` only, when given). */
  treeDigest: string;
  /** Only these paths count (for the role SQL, a handful of files of a large repository). */
  files?: string[];
  /** `extversion` the installed extension reports (pg_net's v0.20.5 tag keeps the 0.20.4 SQL version). */
  extversion?: string;
}

/** The pinned sources. Checksums as published in the offline mirror's README; digests computed from its archives. */
export const SOURCES: Source[] = [
  {
    name: "pg_net",
    tag: "v0.20.5",
    commit: "a8299b11182ea5c974f5e89ae83e70e9e44e9e8f",
    archive: "pg_net-0.20.5.tar.gz",
    archiveSha256: "aff602df0c70c3ed00b604c97b56eede944851530b037b6268127821a3765008",
    url: "https://github.com/supabase/pg_net/archive/refs/tags/v0.20.5.tar.gz",
    treeDigest: "59c54da788a1453bf976fac24f26d58b379707d93de71f2b168511309a0a2461",
    // The v0.20.5 tag is a C-only fix: its Makefile still says EXTVERSION = 0.20.4, so that is what pg_extension shows.
    extversion: "0.20.4",
  },
  {
    name: "supabase_vault",
    tag: "v0.3.1",
    commit: "6e0cd916242d922a646e4d611cc215e09dd429f4",
    archive: "supabase_vault-0.3.1.tar.gz",
    archiveSha256: "a6f161f9e5a2e6a2e83236cf7c4b1aeb9193d82e35c755755d7e39b247c817f0",
    url: "https://github.com/supabase/vault/archive/refs/tags/v0.3.1.tar.gz",
    treeDigest: "23fe115b2f4e4d1b24e63098ae11c070caf55a43b397cadc73f56cfd3023ae33",
    extversion: "0.3.1",
  },
  {
    name: "supabase-postgres-roles",
    tag: "7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b",
    commit: "7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b",
    archive: "supabase-postgres-roles.tar.gz",
    archiveSha256: "d91a20fec8441fcbe0c656419f5c109ff54ebd88022966c057d964ac796ac78f",
    url: "https://github.com/supabase/postgres/archive/7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b.tar.gz",
    treeDigest: "ed9f9c121abbd97e49403fd7337eeeb7ad9bca587073bafce9222dbfbf636ca4",
    files: [
      "LICENSE",
      "ansible/files/postgresql_extension_custom_scripts/before-create.sql",
      "ansible/files/postgresql_extension_custom_scripts/dblink/after-create.sql",
      "ansible/files/postgresql_extension_custom_scripts/pg_cron/after-create.sql",
      "ansible/files/postgresql_extension_custom_scripts/pg_tle/after-create.sql",
      "ansible/files/postgresql_extension_custom_scripts/pgsodium/after-create.sql",
      "ansible/files/postgresql_extension_custom_scripts/postgis_tiger_geocoder/after-create.sql",
      "ansible/files/postgresql_extension_custom_scripts/postgres_fdw/after-create.sql",
      "migrations/db/init-scripts/00000000000000-initial-schema.sql",
      "migrations/db/init-scripts/00000000000001-auth-schema.sql",
      "migrations/db/init-scripts/00000000000002-storage-schema.sql",
      "migrations/db/init-scripts/00000000000003-post-setup.sql",
      "migrations/db/migrate.sh",
      "migrations/db/migrations/10000000000000_demote-postgres.sql",
      "migrations/db/migrations/20220713082019_pg_cron-pg_net-temp-perms-fix.sql",
      "migrations/db/migrations/20221207154255_create_pgsodium_and_vault.sql",
      "migrations/db/migrations/20231020085357_revoke_writes_on_cron_job_from_postgres.sql",
    ],
  },
];

/** Debian packages the two builds need (headers, libcurl for pg_net, libsodium for Vault, a compiler). */
export const BUILD_PACKAGES = [
  "postgresql-server-dev-15",
  "libcurl4-openssl-dev",
  "libsodium-dev",
  "build-essential",
  "pkg-config",
];

const PG_BIN = "/usr/lib/postgresql/15/bin";

/**
 * Downloads and the unpacked role SQL live in the user's cache, not in a clone: every clone on the machine shares
 * them (as every clone shares the installed extensions), so a fresh clone needs no source once one was had.
 */
const SOURCES_DIR = `${Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") || "/root"}/.cache`}/canais-sources`;

/** Where the role SQL is unpacked (dev/stack.ts reads it from here). */
export const ROLES_DIR = `${SOURCES_DIR}/supabase-postgres-roles-${
  SOURCES.find((s) => !s.extversion)!.commit.slice(0, 12)
}`;

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function* walkFiles(dir: string, prefix = "."): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const rel = `${prefix}/${e.name}`;
    if (e.isDirectory) yield* walkFiles(`${dir}/${e.name}`, rel);
    else if (e.isFile) yield rel;
    else throw new Error(`Cannot digest ${dir}/${e.name}: only regular files and folders are expected`);
  }
}

/**
 * The content digest of an unpacked source tree: sha256 of the lines `<sha256 of file>  ./<path>` of every regular
 * file (or of `files` only), sorted by path, each ending in a newline. The same value as
 * `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum` run inside the tree, so it can be
 * checked by hand. Independent of the archive's own bytes (tar headers, compression, the top folder's name).
 */
export async function treeDigest(dir: string, files?: string[]): Promise<string> {
  const paths = files ? files.map((f) => `./${f}`) : [];
  if (!files) { for await (const p of walkFiles(dir)) paths.push(p); }
  const enc = new TextEncoder();
  const sorted = paths.map((p) => ({ p, b: enc.encode(p) })).sort((x, y) => compareBytes(x.b, y.b));
  let text = "";
  for (const { p } of sorted) text += `${await sha256Hex(await Deno.readFile(`${dir}/${p.slice(2)}`))}  ${p}\n`;
  return sha256Hex(enc.encode(text));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

async function pgConfig(flag: string): Promise<string> {
  return (await run(`${PG_BIN}/pg_config`, [flag])).trim();
}

/** The stamp `make install` leaves next to an extension's control file: which pinned source it was built from. */
async function stampPath(name: string): Promise<string> {
  return `${await pgConfig("--sharedir")}/extension/${name}.canais-source`;
}

function stampText(s: Source): string {
  return `${s.name} ${s.tag} ${s.commit} ${s.treeDigest}\n`;
}

/** Whether the extension is installed from exactly the pinned source. */
export async function installed(s: Source): Promise<boolean> {
  if (!(await exists(`${PG_BIN}/pg_config`))) return false;
  const lib = await pgConfig("--pkglibdir");
  const share = await pgConfig("--sharedir");
  if (!(await exists(`${lib}/${s.name}.so`)) || !(await exists(`${share}/extension/${s.name}.control`))) return false;
  try {
    return (await Deno.readTextFile(await stampPath(s.name))) === stampText(s);
  } catch {
    return false;
  }
}

/** Finds the archive (mirror, earlier download, or the pinned URL) and returns its local path; verifies the mirror's sha256. */
async function locate(s: Source, log: (m: string) => void): Promise<string> {
  const mirror = Deno.env.get("CANAIS_MIRROR_DIR");
  if (mirror) {
    const path = `${mirror.replace(/\/+$/, "")}/${s.archive}`;
    if (await exists(path)) {
      const sum = await sha256Hex(await Deno.readFile(path));
      if (sum !== s.archiveSha256) {
        throw new Error(`Cannot use ${path} as its sha256 is ${sum}, the pinned one is ${s.archiveSha256}`);
      }
      return path;
    }
    log(`${s.archive} is not in CANAIS_MIRROR_DIR (${mirror}); trying a download`);
  }
  const cached = `${SOURCES_DIR}/${s.archive}`;
  if (await exists(cached)) return cached;
  await Deno.mkdir(SOURCES_DIR, { recursive: true });
  log(`downloading ${s.url}`);
  try {
    const res = await fetch(s.url, { signal: AbortSignal.timeout(60_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const tmp = `${cached}.part`;
    await Deno.writeFile(tmp, new Uint8Array(await res.arrayBuffer()));
    await Deno.rename(tmp, cached);
    return cached;
  } catch (error) {
    throw new Error(
      `Cannot get the source of ${s.name} ${s.tag}: no mirror and the download of ${s.url} failed (${
        error instanceof Error ? error.message : error
      }). Point CANAIS_MIRROR_DIR at a folder holding ${s.archive} (sha256 ${s.archiveSha256}), or allow access to github.com.`,
    );
  }
}

/** Unpacks an archive into a fresh folder and checks its content digest; returns the source tree's folder. */
async function unpack(s: Source, archive: string, into: string): Promise<string> {
  await Deno.remove(into, { recursive: true }).catch(() => {});
  await Deno.mkdir(into, { recursive: true });
  await run("tar", ["-xzf", archive, "-C", into, "--no-same-owner"]);
  const tops = [];
  for await (const e of Deno.readDir(into)) tops.push(e);
  if (tops.length !== 1 || !tops[0].isDirectory) throw new Error(`${archive} should hold exactly one top folder`);
  const tree = `${into}/${tops[0].name}`;
  const digest = await treeDigest(tree, s.files);
  if (digest !== s.treeDigest) {
    throw new Error(
      `Cannot use ${archive} as its contents digest to ${digest}, the pinned ${s.name} ${s.tag} is ${s.treeDigest}`,
    );
  }
  return tree;
}

async function ensureBuildPackages(log: (m: string) => void) {
  const missing = [];
  for (const p of BUILD_PACKAGES) {
    const out = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f=${Status}", p],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    if (!new TextDecoder().decode(out.stdout).includes("install ok installed")) missing.push(p);
  }
  if (!missing.length) return;
  if (Deno.uid() !== 0) {
    throw new Error(
      `Cannot build pg_net and supabase_vault as Debian packages are missing: sudo apt-get install -y --no-install-recommends ${
        missing.join(" ")
      }`,
    );
  }
  log(`installing build packages: ${missing.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
  await run("apt-get", ["update", "-qq"], { env });
  await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
}

/** Builds one extension from its pinned source with PGXS and installs it (needs root for the system folders). */
async function build(s: Source, log: (m: string) => void) {
  const archive = await locate(s, log);
  const buildDir = await Deno.makeTempDir({ prefix: `canais-build-${s.name}-` });
  const tree = await unpack(s, archive, buildDir);
  if (Deno.uid() !== 0) {
    throw new Error(
      `Cannot install ${s.name} into the system's Postgres as this is not root: cd ${tree} && sudo make install`,
    );
  }
  const env = { PATH: `${PG_BIN}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` };
  const t0 = performance.now();
  await run("make", ["-s", `-j${navigator.hardwareConcurrency || 2}`], { cwd: tree, env });
  await run("make", ["-s", "install"], { cwd: tree, env });
  await Deno.writeTextFile(await stampPath(s.name), stampText(s));
  log(`built and installed ${s.name} ${s.tag} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  await Deno.remove(buildDir, { recursive: true }).catch(() => {});
}

/** Unpacks Supabase's role SQL into {@link ROLES_DIR} unless it is there from the pinned source already. */
async function ensureRoles(s: Source, log: (m: string) => void) {
  const stamp = `${ROLES_DIR}/.canais-source`;
  if ((await exists(stamp)) && (await Deno.readTextFile(stamp)) === stampText(s)) return;
  const archive = await locate(s, log);
  const unpackDir = await Deno.makeTempDir({ prefix: "canais-roles-" });
  const tree = await unpack(s, archive, unpackDir);
  await Deno.remove(ROLES_DIR, { recursive: true }).catch(() => {});
  for (const f of s.files ?? []) {
    const dir = f.includes("/") ? f.slice(0, f.lastIndexOf("/")) : "";
    await Deno.mkdir(`${ROLES_DIR}/${dir}`, { recursive: true });
    await Deno.copyFile(`${tree}/${f}`, `${ROLES_DIR}/${f}`);
  }
  await Deno.writeTextFile(stamp, stampText(s));
  await Deno.remove(unpackDir, { recursive: true }).catch(() => {});
  log(`unpacked Supabase's role set-up SQL (${s.commit.slice(0, 12)}) into ${ROLES_DIR}`);
}

/** Makes sure pg_net and supabase_vault are installed from their pinned sources and the role SQL is unpacked. */
export async function ensure(log: (m: string) => void = (m) => console.error(`[canais] ${m}`)): Promise<void> {
  const extensions = SOURCES.filter((s) => s.extversion);
  const missing = [];
  for (const s of extensions) if (!(await installed(s))) missing.push(s);
  if (missing.length) {
    await ensureBuildPackages(log);
    for (const s of missing) await build(s, log);
  }
  await ensureRoles(SOURCES.find((s) => !s.extversion)!, log);
}

if (import.meta.main) {
  const cmd = Deno.args[0];
  try {
    if (cmd === "ensure") await ensure();
    else if (cmd === "status") {
      const out: Record<string, unknown> = {};
      for (const s of SOURCES.filter((x) => x.extversion)) out[s.name] = { tag: s.tag, installed: await installed(s) };
      out.roles = await exists(`${ROLES_DIR}/.canais-source`);
      console.log(JSON.stringify(out));
    } else {
      console.error("usage: extensions.ts ensure|status");
      Deno.exit(2);
    }
  } catch (error) {
    console.error(`[canais] ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
