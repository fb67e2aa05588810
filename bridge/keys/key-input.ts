/**
 * What a person types when making a key (a name, a model list, an expiry), read the same way by
 * the keys CLI and the desktop's Settings. Pure, with no Node import, so the Settings window
 * checks a field with the very rule the store applies and says what is wrong before anything is sent.
 */
import { machineNameProblem } from '../connection/protocol.js';

/** Names people type on a command line and see in lists. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
/** Ollama model names: `llama3.2`, `llama3.2:1b`, `library/qwen:7b`, `host:5000/ns/model:tag`. */
const MODEL = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$/;

/** Why `name` cannot name a key, or undefined when it can. */
export function keyNameProblem(name: string): string | undefined {
  if (name.trim() === '') return 'a key needs a name, such as "open-webui" or "phone"';
  if (!NAME.test(name)) return `the name "${name}" is not usable: 1 to 64 letters, digits, spaces, ".", "_" or "-", beginning with a letter or digit`;
  return undefined;
}

/** A comma-separated model list ("llama3.2, qwen3:8b") as names; throws saying which one is wrong. */
export function parseModelList(list: string): string[] {
  const models = list.split(',').map((m) => m.trim()).filter(Boolean);
  for (const m of models) {
    if (!MODEL.test(m)) throw new Error(`"${m}" is not a model name (names look like llama3.2 or qwen3:8b, separated by commas)`);
  }
  if (models.length === 0) throw new Error('the model list names no model; leave it empty to allow every model');
  return models;
}

/** A comma-separated computer list ("desktop, laptop") as names; throws saying which one is wrong. */
export function parseMachineList(list: string): string[] {
  const machines = [...new Set(list.split(',').map((m) => m.trim()).filter(Boolean))];
  for (const m of machines) {
    const problem = machineNameProblem(m);
    if (problem) throw new Error(`${problem} (computer names as each computer shows them, separated by commas)`);
  }
  if (machines.length === 0) throw new Error('the computer list names no computer; leave it empty to allow all of your computers');
  return machines;
}

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** 30d, 12h, 90m, 2w, or a date/time Date.parse reads (2027-01-31): an absolute time in ms. */
export function parseExpiry(text: string, now = Date.now()): number {
  const m = /^(\d{1,6})([mhdw])$/.exec(text.trim());
  if (m) {
    const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
    if (ms <= 0) throw new Error(`the expiry "${text}" is no time at all: a key must live longer than that`);
    return now + ms;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(text.trim())) {
    const at = Date.parse(text.trim());
    if (Number.isFinite(at)) {
      if (at <= now) throw new Error(`the expiry ${text.trim()} is in the past`);
      return at;
    }
  }
  throw new Error(`the expiry "${text}" is not a duration (30d, 12h, 90m, 2w) nor a date (2027-01-31)`);
}
