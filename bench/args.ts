/**
 * Numbers from a benchmark's command line, refused with the flag named when they are not what
 * the flag takes.
 */

/** `--name N`: a whole number above 0. */
export function wholeNumber(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number above 0, got "${value}"`);
  return n;
}

/** `--name A,B,C`: whole numbers above 0, comma-separated. */
export function wholeNumbers(name: string, value: string): number[] {
  const list = value.split(',').map((v) => Number(v.trim()));
  const bad = list.find((n) => !Number.isInteger(n) || n < 1);
  if (bad !== undefined || list.length === 0) throw new Error(`--${name} must be whole numbers above 0, comma-separated, got "${value}"`);
  return list;
}
