/**
 * Reading settings from the environment (and the flags that override them), one call per
 * setting: each call names its variable, checks the value and records a problem that names the
 * variable instead of throwing, so that every mistake is reported at once. A blank value counts
 * as unset (Compose passes unset variables as empty strings).
 */
export type Flags = Record<string, string | boolean | undefined>;

interface Common {
  /** The command-line flag (without `--`) that wins over the variable. */
  flag?: string;
}

interface WordOptions {
  /** The form the value must have. */
  valid?: RegExp | ((value: string) => boolean);
  /** What the message says it must be ("an origin like https://cloud.example.com"). */
  expected?: string;
}

/** The spellings a boolean setting accepts, case-insensitively; anything else is refused. */
const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

export class Settings {
  readonly problems: string[] = [];

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly flags: Flags = {},
  ) {}

  /** "PORT (--port)": how messages name a setting. */
  label(name: string, flag?: string): string {
    return flag ? `${name} (--${flag})` : name;
  }

  /** The raw value, trimmed; the flag wins; undefined when unset or blank. */
  raw(name: string, flag?: string): string | undefined {
    const f = flag === undefined ? undefined : this.flags[flag];
    const value = typeof f === 'string' ? f : this.env[name];
    const trimmed = value?.trim();
    return trimmed ? trimmed : undefined;
  }

  /** Records a problem with a setting; the message names it. */
  problem(message: string): void {
    this.problems.push(message);
  }

  /** Text without spaces inside (ids, names, URLs, image references), optionally of a given form. */
  word(name: string, options: Common & WordOptions & { default: string }): string;
  word(name: string, options: Common & WordOptions & { default?: undefined }): string | undefined;
  word(name: string, options: Common & WordOptions & { default?: string }): string | undefined {
    const value = this.raw(name, options.flag);
    if (value === undefined) return options.default;
    const valid = options.valid === undefined || (typeof options.valid === 'function' ? options.valid(value) : options.valid.test(value));
    if (/\s/.test(value) || !valid) {
      this.problem(`${this.label(name, options.flag)}="${value}" must be ${options.expected ?? 'one word without spaces'}`);
      return options.default;
    }
    return value;
  }

  /** Free text such as a path (spaces allowed). */
  text(name: string, options: Common & { default: string }): string {
    return this.raw(name, options.flag) ?? options.default;
  }

  /** A whole number within [min, max]; without a default, undefined when the setting is absent. */
  int(name: string, options: Common & { default: number; min: number; max: number }): number;
  int(name: string, options: Common & { min: number; max: number }): number | undefined;
  int(name: string, options: Common & { default?: number; min: number; max: number }): number | undefined {
    const value = this.raw(name, options.flag);
    if (value === undefined) return options.default;
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < options.min || n > options.max) {
      this.problem(`${this.label(name, options.flag)}="${value}" must be a whole number from ${options.min} to ${options.max}`);
      return options.default;
    }
    return n;
  }

  /** On or off: 1/0, true/false, yes/no, on/off in any case. A boolean flag given wins. */
  bool(name: string, options: Common & { default: boolean }): boolean {
    if (options.flag !== undefined && this.flags[options.flag] === true) return true;
    const value = this.raw(name);
    if (value === undefined) return options.default;
    const lower = value.toLowerCase();
    if (TRUE.includes(lower)) return true;
    if (FALSE.includes(lower)) return false;
    this.problem(`${name}="${value}" must be one of ${[...TRUE, ...FALSE].join(', ')} (any case)`);
    return options.default;
  }

  /** One of a fixed list, in any case. */
  choice<T extends string>(name: string, choices: readonly T[], options: Common & { default: T }): T {
    const value = this.raw(name, options.flag);
    if (value === undefined) return options.default;
    const lower = value.toLowerCase();
    const found = choices.find((c) => c === lower);
    if (found === undefined) {
      this.problem(`${this.label(name, options.flag)}="${value}" must be one of ${choices.join(', ')}`);
      return options.default;
    }
    return found;
  }

  /** A comma-separated list of words, each checked by `check` (which returns what is wrong, or undefined). */
  list(name: string, options: { default: string[]; check: (item: string) => string | undefined }): string[] {
    const value = this.raw(name);
    if (value === undefined) return options.default;
    const items = value
      .split(',')
      .map((i) => i.trim())
      .filter(Boolean);
    for (const item of items) {
      const wrong = options.check(item);
      if (wrong) this.problem(`${name} entry "${item}" ${wrong}`);
    }
    return items;
  }

  /** Runs a validator that throws (one shared with other modules), turning its error into a problem. */
  checked<T>(validate: () => T, fallback: T): T {
    try {
      return validate();
    } catch (e) {
      this.problem((e as Error).message);
      return fallback;
    }
  }
}
