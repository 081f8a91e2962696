/**
 * @module
 * The normalised types of the Evolution API client: what every job and route sees, whatever the server version
 * (v2.3.x or v1.8). The client (`client.ts`) parses each response with zod into these shapes.
 */

/** Connection state of an instance, as the client reports it. `unknown`: the server did not say. */
export type ConnectionState = "open" | "connecting" | "close" | "unknown";

/** One instance as listed by `fetchInstances` (v2 `connectionStatus` / v1.8 `status` normalised to `state`). */
export interface InstanceSummary {
  name: string;
  id: string | null;
  state: ConnectionState;
  ownerJid: string | null;
  profileName: string | null;
  integration: string | null;
  disconnectionReasonCode: number | null;
  disconnectionAt: string | null;
}

/** A listing read by `listInstances`: the summaries kept, and how many rows the server listed in all. */
export type InstanceListing = InstanceSummary[] & { total: number };

/** `GET /` */
export interface ServerInfo {
  version: string;
  message: string;
  clientName: string | null;
}

/** The instance's webhook as stored by Evolution (v2 row / v1.8 flat object normalised). */
export interface WebhookConfig {
  enabled: boolean;
  url: string | null;
  events: string[];
  byEvents: boolean;
  base64: boolean;
  headers: Record<string, string> | null;
}

/** A QR code (or pairing code) returned by connect/create. `count` 0 = none arrived yet. */
export interface QrCode {
  pairingCode: string | null;
  code: string | null;
  base64: string | null;
  count: number;
}

/** What `connect`/`restart` answered: the instance's state, or a QR code to scan. */
export type ConnectResult = { kind: "state"; state: ConnectionState } | { kind: "qr"; qr: QrCode };

/** `POST /instance/create` result. */
export interface CreatedInstance {
  name: string;
  id: string | null;
  state: ConnectionState;
  qr: QrCode | null;
}

/** Stable error codes of {@link EvolutionError}. */
export type EvolutionErrorCode =
  | "unauthorized" // 401 (string message)
  | "not_found" // 404: instance or route does not exist
  | "name_in_use" // 403 on create: the name is taken
  | "bad_request" // other 4xx (array messages), e.g. logout of a closed instance
  | "unreachable" // network error: connection refused, DNS, reset
  | "timeout" // no answer within the client's timeout
  | "server_error" // 5xx, or the 200-with-{error:true} quirk of connect/restart
  | "bad_response" // 2xx whose body does not match the contract
  | "socket_closed" // the instance's WhatsApp socket is dead ("Connection Closed"; a delete whose logout failed)
  | "license_required"; // Evolution 2.4 not activated: 503 LICENSE_REQUIRED on every business route

/** Operations of the client, as written to `api_logs.event`. */
export type EvolutionOperation =
  | "server_info"
  | "fetch_instances"
  | "connection_state"
  | "create_instance"
  | "connect"
  | "restart"
  | "logout"
  | "delete_instance"
  | "set_webhook"
  | "find_webhook"
  | "probe_socket";

/** What the liveness probe (`POST /chat/fetchBusinessProfile/{i}`) says of an instance's WhatsApp socket. */
export type SocketLiveness = "live" | "dead" | "unknown";

/** The major API version of a server: "1" = 1.8.x (flat bodies, PUT restart, its own event list), "2" = 2.x. */
export type ApiMajor = "1" | "2";
