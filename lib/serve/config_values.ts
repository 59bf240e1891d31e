// One value of a `serve` flag checked in isolation, with the one message form for a bad value: the flag,
// the value seen and the fix. The rules that involve two settings are config.ts's.

import { parseByteSize } from "../util/byte_size.ts";
import { invalidSetting } from "../util/errors.ts";
import { HOST_PORT_EXPECTED, parseHostPort } from "../util/host_port.ts";
import { isFetchableUrl } from "./oauth_issuer.ts";

/** WebSocket messages stop at 64 MiB - 1 byte, so frames must too. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024 - 1;
/** A minimum body rate above 1 GiB/s would refuse every client. */
export const MAX_BODY_RATE = 1024 * 1024 * 1024;
/** Replay and client buffers are memory held for others: 4 GiB is a bound, not a target. */
export const MAX_BUFFER_BYTES = 4 * 1024 * 1024 * 1024;

/** A whole number, at least `min`; `meaning` says what a special value does. */
export function wholeNumber(flag: string, text: string, min: 0 | 1, meaning = ""): number {
  const value = Number(text.trim());
  if (!/^\+?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw invalidSetting({
      setting: flag,
      value: text,
      expected: `a whole number, ${min} or more${meaning}`,
      example: `${flag} 10`,
    });
  }
  return value;
}

/** Seconds as milliseconds; `zeroMeans` allows 0 and says what it does. */
export function secondsMs(flag: string, text: string, zeroMeans?: string): number {
  const value = Number(text.trim());
  const min = zeroMeans === undefined ? "greater than 0" : `0 or more (0 ${zeroMeans})`;
  if (text.trim() === "" || !Number.isFinite(value) || value < 0 || (value === 0 && !zeroMeans)) {
    throw invalidSetting({
      setting: flag,
      value: text,
      expected: `a number of seconds, ${min}`,
      example: `${flag} 60`,
    });
  }
  return value * 1000;
}

/** A size with an optional KiB/MiB suffix, from 1 KiB to `max`. */
export function byteSize(flag: string, text: string, max: number): number {
  const value = parseByteSize(text);
  const expected = `a size from 1KiB to ${max / 1024 / 1024 | 0}MiB such as 16MiB or 1048576`;
  if (value === undefined || value < 1024) {
    throw invalidSetting({ setting: flag, value: text, expected, example: `${flag} 16MiB` });
  }
  if (value > max) {
    throw invalidSetting({
      setting: flag,
      value: text,
      problem: max === MAX_FRAME_BYTES
        ? "WebSocket messages are limited to 64MiB - 1 byte"
        : `it is over ${max / 1024 / 1024}MiB`,
      expected: `at most ${Math.floor(max / 1024 / 1024)}MiB`,
      example: `${flag} 16MiB`,
    });
  }
  return value;
}

/** A whole number of 1 or more. */
export function positive(flag: string, text: string): number {
  return wholeNumber(flag, text, 1);
}

/** A buffer size: up to {@link MAX_BUFFER_BYTES}. */
export function bufferSize(flag: string, text: string): number {
  return byteSize(flag, text, MAX_BUFFER_BYTES);
}

/** `HOST:PORT`, IPv6 in brackets. */
export function hostPort(flag: string, text: string): { hostname: string; port: number } {
  try {
    return parseHostPort(text);
  } catch (error: unknown) {
    if (!(error instanceof TypeError)) throw error;
    throw invalidSetting({
      setting: flag,
      value: text,
      problem: error.message,
      expected: HOST_PORT_EXPECTED,
    }, { cause: error });
  }
}

/** An http:// or https:// URL. */
export function httpUrl(flag: string, text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || !["http:", "https:"].includes(url.protocol)) {
    throw invalidSetting({
      setting: flag,
      value: text,
      expected: "an http:// or https:// URL",
      example: `${flag} https://gw.example.com`,
    });
  }
  return text;
}

/** An OAuth issuer URL: https (http only on loopback), no query or fragment (RFC 8414 §2). */
export function issuerUrl(flag: string, text: string): string {
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || !isFetchableUrl(text) || url.search !== "" || url.hash !== "") {
    throw invalidSetting({
      setting: flag,
      value: text,
      expected:
        "the authorization server's issuer URL: https://, or http:// on localhost/127.0.0.1/[::1], without ? or #",
      example: `${flag} https://idp.example.com/realms/mcp`,
    });
  }
  return text;
}

/** A flag, else its environment variable (empty counts as unset), else the default; with its name. */
export function flagOrEnv(
  flag: string,
  value: string | undefined,
  env: { name: string; read: (name: string) => string | undefined },
): { setting: string; text: string } | undefined {
  if (value !== undefined) return { setting: flag, text: value };
  const fromEnv = env.read(env.name)?.trim();
  return fromEnv === undefined || fromEnv === "" ? undefined : { setting: env.name, text: fromEnv };
}
