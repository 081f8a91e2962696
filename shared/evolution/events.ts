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
 * The config names Evolution 1.8 accepts (its own shorter list, used both by create and by webhook/set): anything
 * else, the 2.x lifecycle names included, is a 400. It has three names 2.x does not.
 */
export const EVENT_CONFIG_NAMES_V18 = [
  "APPLICATION_STARTUP",
  "QRCODE_UPDATED",
  "MESSAGES_SET",
  "MESSAGES_UPSERT",
  "MESSAGES_UPDATE",
  "MESSAGES_DELETE",
  "SEND_MESSAGE",
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
  "NEW_JWT_TOKEN",
  "TYPEBOT_START",
  "TYPEBOT_CHANGE_STATUS",
  "CHAMA_AI_ACTION",
] as const;

/**
 * The events this bundle subscribes every tenant's instance to on Evolution 2.x: the connection lifecycle. Message
 * traffic is left out on purpose (it is the product's business, and would only load the receiver).
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

/** The lifecycle events Evolution 1.8 can be asked for: its list has no status/logout/remove/create/delete names. */
export const LIFECYCLE_EVENTS_V18: string[] = ["CONNECTION_UPDATE", "QRCODE_UPDATED"];

/** The events to subscribe to on a server of that major version ("1" = 1.8.x, "2" = 2.x). */
export function lifecycleEvents(major: "1" | "2"): string[] {
  return major === "1" ? LIFECYCLE_EVENTS_V18 : LIFECYCLE_EVENTS;
}

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
