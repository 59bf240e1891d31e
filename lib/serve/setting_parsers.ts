// Parsers of single serve settings shared by its flag tables (config.ts, cluster/cluster_config.ts): each
// turns one flag's text into a value or throws the ConfigError that names the flag, the value and the fix.

import { invalidSetting } from "../util/errors.ts";

/** A whole number of at least `min`; `meaning` follows the bound in the message (" (0 = off)"). */
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
