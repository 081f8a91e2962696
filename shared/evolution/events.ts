/**
 * @module
 * Evolution webhook event vocabulary (docs/EVOLUTION.md, webhooks): the config names accepted in `events[]`, the
 * dotted names in payloads, the mapping between them and the `byEvents` URL suffix. Shared by the client (what to
 * subscribe), the webhook receiver (what to store) and the simulator (what to deliver where).
 */

/** Every config name Evolution 2.3.x accepts in a webhook's `events` list (anything else is a 400). */
export const EVENT_CONFIG_NAMES = [
  "APPLICATION_STARTUP",
  "QRCODE_UPDATED",
  "MESSAGES_SET",
  "MESSAGES_UPSERT",
  "MESSAGES_EDITED",
  "MESSAGES_UPDATE",
  "MESSAGES_DELETE",
  "SEND_MESSAGE",
  "SEND_MESSAGE_UPDATE",
  "CONTACTS_SET",
  "CONTACTS_UPSERT",
  "CONTACTS_UPDATE",
  "PRESENCE_UPDATE",
  "CHATS_SET",
  "CHATS_UPSERT",
  "CHATS_UPDATE",
  "CHATS_DELETE",
  "GROUPS_UPSERT",
  "GROUP_UPDATE",
  "GROUP_PARTICIPANTS_UPDATE",
  "CONNECTION_UPDATE",
  "LABELS_EDIT",
  "LABELS_ASSOCIATION",
  "CALL",
  "TYPEBOT_START",
  "TYPEBOT_CHANGE_STATUS",
  "REMOVE_INSTANCE",
  "LOGOUT_INSTANCE",
  "INSTANCE_CREATE",
  "INSTANCE_DELETE",
  "STATUS_INSTANCE",
] as const;

/** A config name of {@link EVENT_CONFIG_NAMES}. */
export type EventConfigName = typeof EVENT_CONFIG_NAMES[number];

/**
 * The events this bundle subscribes every tenant's instance to: the connection lifecycle. Message traffic is left
 * out on purpose (it is the product's business, and would only load the receiver).
 */
export const LIFECYCLE_EVENTS: EventConfigName[] = [
  "CONNECTION_UPDATE",
  "QRCODE_UPDATED",
  "STATUS_INSTANCE",
  "LOGOUT_INSTANCE",
  "REMOVE_INSTANCE",
  "INSTANCE_CREATE",
  "INSTANCE_DELETE",
];

/** Payload event names the receiver writes to `api_logs` (the rest only refresh the tenant's webhook activity). */
export const LOGGED_EVENTS: ReadonlySet<string> = new Set([
  "connection.update",
  "status.instance",
  "logout.instance",
  "remove.instance",
  "instance.create",
  "instance.delete",
]);

/** `connection.update` → `CONNECTION_UPDATE` (`.` and `-` become `_`, upper-cased). */
export function eventConfigName(event: string): string {
  return event.replace(/[.-]/g, "_").toUpperCase();
}

/** `connection.update` → `connection-update`: the path suffix Evolution appends when `byEvents` is on. */
export function eventSuffix(event: string): string {
  return eventConfigName(event).toLowerCase().replace(/_/g, "-");
}
