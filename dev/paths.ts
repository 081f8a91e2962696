/** File URL helpers (no JSR here, so not @std/path). */
export function fromFileUrl(url: URL | string): string {
  return decodeURIComponent(new URL(url).pathname);
}
export function toFileUrl(path: string): URL {
  return new URL(`file://${path.split("/").map(encodeURIComponent).join("/")}`);
}
/** The project's root folder. */
export const ROOT = fromFileUrl(new URL("../", import.meta.url)).replace(/\/$/, "");
