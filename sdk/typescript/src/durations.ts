/**
 * Durations: the API takes seconds or human strings (`"30s"`, `"15m"`, `"2h"`, `"1d"`).
 * @module
 */

/**
 * A duration: seconds as a number, or a string such as `"500ms"`, `"30s"`, `"15m"`, `"2h"`, `"1d"`.
 * @example
 * ```ts
 * const ttl: Duration = '2h';
 * ```
 */
export type Duration = number | string;

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/**
 * The seconds in a duration, or `undefined` when it cannot be read (the server then explains).
 * @example
 * ```ts
 * seconds('15m'); // 900
 * seconds(30); // 30
 * ```
 */
export function seconds(value: Duration): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/i.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * (UNITS[(match[2] ?? 's').toLowerCase()] ?? 1);
}
