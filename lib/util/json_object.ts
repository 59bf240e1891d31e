// The one check for "a JSON object": not null, not an array.

/** A JSON object whose members are not yet checked. */
export type JsonObject = { [key: string]: unknown };

/**
 * True for a non-null, non-array object, such as `JSON.parse` makes of `{…}`.
 *
 * @example
 * ```ts
 * import { isObject } from "./json_object.ts";
 * isObject({ a: 1 }); // true
 * isObject([1]); // false
 * isObject(null); // false
 * ```
 */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
