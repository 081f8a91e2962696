/**
 * @module
 * Deleting, logging out and creating instances as a real Evolution server allows it, for every repair that does so
 * (reset, migrate, fix, the isolation fix, orphan cleanup):
 *
 * - A deleted name stays taken until Evolution has delivered the instance's `remove.instance` webhook (retries
 *   included: up to ~20 minutes when the receiver fails) and cleaned up, so a create right after a delete is a 403.
 *   {@link deleteInstance} first switches the instance's webhook off when it is going to be created again (so the
 *   delete waits on no delivery), and {@link awaitNameFree} then waits, bounded, until the name is free.
 * - A dead WhatsApp socket makes logout answer 500 "Connection Closed" and delete 400 "[object Object]" (2.3.7):
 *   both are `socket_closed`, and the remedy is a restart of the instance, a (bounded) wait for its new socket, then
 *   the call again.
 *
 * Each function returns what it did, for the caller's audit row; none hides a failure it could not recover.
 */
import type { EvolutionClient } from "./client.ts";
import type { SocketLiveness } from "./types.ts";
import { describeError, isEvolutionError } from "./errors.ts";

/** How long a repair waits for a deleted name to become free before it gives up (and says so). */
export const NAME_FREE_TIMEOUT_MS = 120_000;

/** What a restart that did not heal a dead socket leaves to a person. */
export const DEAD_SOCKET_ADVICE =
  "the instance's WhatsApp socket is still dead after a restart of the instance: restart the Evolution process " +
  "(the remedy reported for this fault), then run diagnose again";

/**
 * How long a restarted instance is given to bring its new socket up before the call is tried again: Evolution answers
 * the restart before the new socket exists (it ends the old one and reconnects when Baileys reports that close;
 * 2.3.7 then takes about 1.5 s to open a paired session).
 */
export const SOCKET_RECOVERY_TIMEOUT_MS = 15_000;

/**
 * How long an instance that never left `open` after its restart may keep failing the probe before the restart is
 * judged to have done nothing (a socket already ended cannot be ended again: the frozen instance of
 * evolution-api#1153/#2403), instead of waiting the whole {@link SOCKET_RECOVERY_TIMEOUT_MS}.
 */
export const UNCHANGED_AFTER_RESTART_MS = 3_000;

/** What a socket recovery did: whether a restart was needed, what the probe said afterwards, how long it waited. */
export interface SocketRecovery {
  restarted: boolean;
  probe?: SocketLiveness;
  /** The instance's connectionState when the wait ended (null: it could not be read). */
  state?: string | null;
  waitedMs?: number;
}

/** A socket a restart of the instance did not bring back: the call still fails with Connection Closed. */
export class SocketStillDead extends Error {
  override name = "SocketStillDead";
  readonly code = "socket_closed";
  constructor(what: string, recovery: SocketRecovery, cause: unknown) {
    super(
      `Cannot ${what}: its WhatsApp socket is still dead after a restart of the instance (state ${recovery.state}, ` +
        `probe ${recovery.probe}, ${recovery.waitedMs} ms): restart the Evolution process, then try again ` +
        `(${describeError(cause)})`,
      { cause },
    );
  }
}

/**
 * A dead socket: the instance is restarted (the remedy), then, bounded, the new socket is waited for (connectionState
 * `open` and the probe answering `live`), so that a call tried again goes over it. `probe` says whether the restart
 * healed it: `dead` after the wait means it did not (only a restart of the Evolution process will). An instance the
 * restart left `open` and dead, never reconnecting, is judged after {@link UNCHANGED_AFTER_RESTART_MS}.
 */
export async function restartDeadSocket(
  client: EvolutionClient,
  name: string,
  options: { timeoutMs?: number } = {},
): Promise<SocketRecovery> {
  await client.restart(name);
  const timeoutMs = options.timeoutMs ?? SOCKET_RECOVERY_TIMEOUT_MS;
  const t0 = performance.now();
  let pause = 100;
  let reconnected = false;
  for (;;) {
    const state = await client.connectionState(name).catch(() => null);
    if (state !== "open") reconnected = true;
    const probe = state === "open" ? await client.probeSocket(name) : "dead";
    const waited = performance.now() - t0;
    if (probe !== "dead" || waited >= timeoutMs || (!reconnected && waited >= UNCHANGED_AFTER_RESTART_MS)) {
      return { restarted: true, probe, state, waitedMs: Math.round(waited) };
    }
    await new Promise((r) => setTimeout(r, Math.min(pause, timeoutMs - waited)));
    pause = Math.min(pause * 2, 1000);
  }
}

/** True when a recovery left the socket working, or as far as can be told (v1.8 has no probe: `unknown`). */
export function socketHealed(r: SocketRecovery): boolean {
  return r.probe === "live" || r.probe === "unknown";
}

/**
 * Logs an instance out. A closed (400) or missing (404) instance is not an error; a dead socket is restarted and the
 * logout tried once more ({@link SocketStillDead} when it is still dead). Answers what happened.
 */
export async function logoutInstance(
  client: EvolutionClient,
  name: string,
  options: { recoveryTimeoutMs?: number } = {},
): Promise<{ loggedOut: boolean; note?: string; recovery?: SocketRecovery }> {
  try {
    await client.logout(name);
    return { loggedOut: true };
  } catch (error) {
    if (isEvolutionError(error, "bad_request", "not_found")) return { loggedOut: false, note: describeError(error) };
    if (!isEvolutionError(error, "socket_closed")) throw error;
  }
  const recovery = await restartDeadSocket(client, name, { timeoutMs: options.recoveryTimeoutMs });
  try {
    await client.logout(name);
    return { loggedOut: true, recovery };
  } catch (error) {
    if (isEvolutionError(error, "bad_request", "not_found")) {
      return { loggedOut: false, note: describeError(error), recovery };
    }
    if (isEvolutionError(error, "socket_closed")) throw new SocketStillDead(`log out '${name}'`, recovery, error);
    throw error;
  }
}

/**
 * Deletes an instance (a missing one is not an error). With `recreate`, its webhook is switched off first, so that
 * Evolution's delete waits on no `remove.instance` delivery and the name is free within its cleanup time. A delete
 * refused by a dead socket is retried after a restart of the instance ({@link SocketStillDead} when it is still dead).
 */
export async function deleteInstance(
  client: EvolutionClient,
  name: string,
  options: { recreate?: boolean; recoveryTimeoutMs?: number } = {},
): Promise<{ deleted: boolean; webhookOff?: boolean | string; recovery?: SocketRecovery }> {
  let webhookOff: boolean | string | undefined;
  if (options.recreate) {
    try {
      const hook = await client.findWebhook(name);
      if (hook?.enabled && hook.url) await client.setWebhook(name, { url: hook.url, enabled: false, events: [] });
      webhookOff = true;
    } catch (error) {
      if (isEvolutionError(error, "not_found")) return { deleted: false };
      webhookOff = describeError(error); // not fatal: the delete goes on, the wait may be longer
    }
  }
  const attempt = async () => {
    try {
      await client.deleteInstance(name);
      return true;
    } catch (error) {
      if (isEvolutionError(error, "not_found")) return false;
      throw error;
    }
  };
  try {
    return { deleted: await attempt(), ...(webhookOff !== undefined ? { webhookOff } : {}) };
  } catch (error) {
    if (!isEvolutionError(error, "socket_closed")) throw error;
  }
  const recovery = await restartDeadSocket(client, name, { timeoutMs: options.recoveryTimeoutMs });
  try {
    return { deleted: await attempt(), ...(webhookOff !== undefined ? { webhookOff } : {}), recovery };
  } catch (error) {
    if (isEvolutionError(error, "socket_closed")) throw new SocketStillDead(`delete '${name}'`, recovery, error);
    throw error;
  }
}

/** A name that is still taken after the bounded wait. */
export class NameStillTaken extends Error {
  override name = "NameStillTaken";
  readonly code = "name_in_use";
  constructor(instance: string, waitedMs: number) {
    super(
      `Cannot create instance '${instance}' yet: Evolution still holds the name ${
        Math.round(waitedMs / 1000)
      } s after the delete (it frees it once the instance's remove.instance webhook delivery and its cleanup are done); try again later`,
    );
  }
}

/** Waits (bounded) until a deleted instance's name is free; throws {@link NameStillTaken} when it is not. */
export async function awaitNameFree(
  client: EvolutionClient,
  name: string,
  options: { timeoutMs?: number } = {},
): Promise<{ waitedMs: number }> {
  const { gone, waitedMs } = await client.waitUntilGone(name, { timeoutMs: options.timeoutMs ?? NAME_FREE_TIMEOUT_MS });
  if (!gone) throw new NameStillTaken(name, waitedMs);
  return { waitedMs };
}

/**
 * Creates a tenant's instance; when the name is still held by an instance being deleted (403 "already in use" while
 * nothing answers to it), waits until it is free and creates it then. Answers the instance and the wait.
 */
export async function createWhenFree(
  client: EvolutionClient,
  slug: string,
  name: string,
  options: { timeoutMs?: number } = {},
): Promise<Awaited<ReturnType<EvolutionClient["createInstance"]>> & { waitedMs: number }> {
  try {
    return { ...(await client.createInstance(slug)), waitedMs: 0 };
  } catch (error) {
    if (!isEvolutionError(error, "name_in_use")) throw error;
    // an instance that still has a state is really there (one being deleted answers `close` only while its
    // remove.instance delivery runs; a caller that has just deleted it waits with awaitNameFree first): not a wait,
    // the caller decides. No state (its memory is gone, its row not yet) or none at all: being deleted, wait.
    const state = await client.connectionState(name).catch((e) => (isEvolutionError(e, "not_found") ? null : "?"));
    if (state === "open" || state === "connecting" || state === "close" || state === "?") throw error;
  }
  const { waitedMs } = await awaitNameFree(client, name, options);
  return { ...(await client.createInstance(slug)), waitedMs };
}
