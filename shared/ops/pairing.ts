/**
 * @module
 * `pairing-code` (issue 19, item 3): a pairing code for a tenant whose number must be paired again, for the owner to
 * type on the phone (WhatsApp > Linked devices > Link a device > Link with phone number instead) rather than scan a
 * QR code. On the tenant's own Evolution server only: reads the instance's state; a connected one is a 409; a socket
 * already showing QR codes is closed first (Evolution applies a number only to a new socket: a connect on a
 * `connecting` instance answers its current QR and ignores the number; the logout of an unpaired socket loses
 * nothing); then `GET /instance/connect/{i}?number=<digits>`, whose QR object carries the pairing code. Nothing is
 * destroyed, so it acts at once (no dry run); every step is audited (`pairing-code.<step>`), with the number masked
 * and the code itself left out of the audit (it is answered to the caller only).
 */
import { z } from "zod";
import { ConflictError } from "../errors.ts";
import type { Deps } from "../deps.ts";
import type { ConnectResult } from "../evolution/types.ts";
import { instanceName, Slug } from "../naming.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { withTenantLease } from "../tenant_lease.ts";
import { Operation, type OperationResult, StepFailed, type StepReport } from "./operation.ts";
import { clientFor, loadTenant } from "./tenants.ts";

/**
 * A phone number for a pairing code: E.164 without the `+` (which may be given), digits only, 10 to 15 of them
 * (country code first, as WhatsApp and Evolution's `number` take it).
 */
export const PairingNumber = z.string().trim().transform((v) => v.replace(/^\+/, "")).pipe(
  z.string()
    .regex(/^\d*$/, "must be digits only (an optional leading +), the country code first, e.g. 5511987654321")
    .min(10, "must have at least 10 digits (E.164: the country code first)")
    .max(15, "must have at most 15 digits (E.164)"),
);
export type PairingNumber = z.infer<typeof PairingNumber>;

/** `POST /pairing-code` */
export const PairingCodeBody = z.object({ slug: Slug, number: PairingNumber }).strict();
export type PairingCodeBody = z.infer<typeof PairingCodeBody>;

/** What `pairing-code` answers. */
export interface PairingCodeResponse {
  action: "pairing-code";
  tenant: Slug;
  operationId: string;
  ok: boolean;
  result: OperationResult;
  instance: string;
  /** The code to type on the phone (8 characters), null when Evolution gave none (then `error` says why). */
  pairingCode: string | null;
  /** The number it is for, masked as in the audit. */
  number: string;
  /** QR codes the instance has shown since its count was last reset (the QR limit counts them, contract §5.2). */
  qrCount: number | null;
  /** What the owner does with the code. */
  advice: string;
  error?: string;
  steps: StepReport[];
}

/** `5511987654321` → `+55*******4321`: enough to tell numbers apart in the audit, not enough to dial. */
export function maskNumber(number: string): string {
  return `+${number.slice(0, 2)}${"*".repeat(Math.max(0, number.length - 6))}${number.slice(-4)}`;
}

const ADVICE = "On the phone of that number: WhatsApp > Settings > Linked devices > Link a device > " +
  "Link with phone number instead, then type the code (it changes with every new QR code, about every 45 s; ask " +
  "again if it expired).";

/** A connect answer without the QR payload or the code (for the audit). */
function auditOf(r: ConnectResult): Record<string, unknown> {
  return r.kind === "state"
    ? { state: r.state }
    : { qr: true, qrCount: r.qr.count, pairingCode: r.qr.pairingCode ? "issued" : null };
}

/** Asks the tenant's own server for a pairing code for `number` (see the module doc). */
export async function pairingCodeTenant(
  deps: Deps,
  slug: Slug,
  options: { actor: string; number: PairingNumber },
): Promise<PairingCodeResponse> {
  const tenant = await loadTenant(deps.sql, slug);
  const masked = maskNumber(options.number);
  const op = new Operation(deps.sql, { action: "pairing-code", actor: options.actor, tenant: slug, dryRun: false });
  return await withTenantLease(
    deps.sql,
    { slug, action: "pairing-code", actor: options.actor, operationId: op.id },
    async (held) => {
      op.hold(held);
      const evolution = await clientFor(deps, tenant);
      const name = instanceName(slug, deps.config.instancePrefix);
      let connect: ConnectResult | null = null;
      let error: string | undefined;
      try {
        const state = await op.run("state", () => evolution.connectionState(name), {
          before: { number: masked },
          after: (s) => ({ state: s }),
        });
        if (state === "open") {
          const message = `Cannot request a pairing code for tenant '${slug}' as its number is already connected ` +
            `(instance '${name}' is open): nothing to pair; to pair another number, reset the integration first`;
          await op.record("connect", "refused", { error: message, detail: { state } });
          throw new ConflictError(message, { code: "already_connected", details: { instance: name, state } });
        }
        if (state === "connecting") {
          // Evolution applies a number to a new socket only: end the pairing in progress (it has no session)
          await op.run("close_pairing", () => evolution.logout(name), {
            before: { state },
            after: () => ({ state: "close" }),
          });
        }
        connect = await op.run("connect", () => evolution.connect(name, { number: options.number }), {
          before: { number: masked },
          after: auditOf,
        });
        if (connect.kind === "qr" && !connect.qr.pairingCode) {
          // the socket's first QR (which brings the code) came after Evolution's wait: read it once more
          await new Promise((r) => setTimeout(r, 2_000));
          connect = await op.run("read_code", () => evolution.connect(name), { after: auditOf });
        }
        if (connect.kind === "state") {
          error = `Evolution answered the state '${connect.state}' instead of a pairing code`;
        } else if (!connect.qr.pairingCode) {
          error = "Evolution has not issued a pairing code yet: ask again in a few seconds";
        }
      } catch (e) {
        if (!(e instanceof StepFailed)) throw e;
        const cause = e.cause;
        if (isEvolutionError(cause, "not_found")) {
          throw new ConflictError(
            `Cannot request a pairing code for tenant '${slug}' as instance '${name}' does not exist: run fix`,
            { code: "instance_not_found", details: { instance: name } },
          );
        }
        error = describeError(cause);
      }
      const code = connect?.kind === "qr" ? connect.qr.pairingCode : null;
      return {
        action: "pairing-code",
        tenant: slug,
        operationId: op.id,
        ok: !error,
        result: error ? "failed" : "ok",
        instance: name,
        pairingCode: code,
        number: masked,
        qrCount: connect?.kind === "qr" ? connect.qr.count : null,
        advice: ADVICE,
        ...(error ? { error } : {}),
        steps: op.steps,
      };
    },
  );
}
