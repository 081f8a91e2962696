/**
 * @module
 * A strict XML reader for tests: saxes (a conformant, non-validating XML 1.0 parser with namespaces) turned into a
 * small element tree. Any well-formedness error (bad character, unescaped `&` or `<`, `]]>` in text, unbound prefix,
 * mismatched tag, two roots…) throws.
 */
import { SaxesParser } from "saxes";

/** One element: qualified name, attributes by qualified name, children in order (text as strings). */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: Array<XmlElement | string>;
}

/** Parses `text` as a namespaced XML document; throws on the first well-formedness error. */
export function parseXml(text: string): XmlElement {
  const parser = new SaxesParser({ xmlns: true, position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let error: Error | undefined;
  parser.on("error", (e) => {
    error ??= e;
  });
  parser.on("opentag", (tag) => {
    const attrs: Record<string, string> = {};
    for (const [name, attr] of Object.entries(tag.attributes)) attrs[name] = attr.value;
    const el: XmlElement = { name: tag.name, attrs, children: [] };
    if (stack.length) stack[stack.length - 1].children.push(el);
    else root = el;
    stack.push(el);
  });
  parser.on("closetag", () => {
    stack.pop();
  });
  parser.on("text", (t) => {
    if (stack.length) stack[stack.length - 1].children.push(t);
  });
  parser.write(text).close();
  if (error) throw new Error(`not well-formed XML: ${error.message}`);
  if (!root) throw new Error("no root element");
  return root;
}

/** Every element under `el` (itself included), depth first. */
export function elements(el: XmlElement): XmlElement[] {
  const out: XmlElement[] = [el];
  for (const c of el.children) if (typeof c !== "string") out.push(...elements(c));
  return out;
}

/** Elements under `el` with this name and, when given, these attribute values. */
export function findAll(el: XmlElement, name: string, attrs: Record<string, string> = {}): XmlElement[] {
  return elements(el).filter((e) => e.name === name && Object.entries(attrs).every(([k, v]) => e.attrs[k] === v));
}

/** The one element matching; throws when there is none or more than one. */
export function findOne(el: XmlElement, name: string, attrs: Record<string, string> = {}): XmlElement {
  const all = findAll(el, name, attrs);
  if (all.length !== 1) throw new Error(`expected one <${name} ${JSON.stringify(attrs)}>, found ${all.length}`);
  return all[0];
}

/** True when the element's `class` attribute holds `cls`. */
export function hasClass(el: XmlElement, cls: string): boolean {
  return (el.attrs.class ?? "").split(/\s+/).includes(cls);
}

/** The text content (all descendant text, `<title>` included unless `skipTitles`). */
export function textOf(el: XmlElement, skipTitles = false): string {
  return el.children.map((c) =>
    typeof c === "string" ? c : skipTitles && c.name === "title" ? "" : textOf(c, skipTitles)
  )
    .join("");
}
