/**
 * Settings on disk: one JSON file in the app's user-data folder, written atomically (temp file
 * then rename) so a crash mid-write never leaves half a file. A file that is unreadable or
 * invalid is kept aside as `.invalid` and replaced by defaults, with the reason reported.
 * Settings hold no secrets: tokens live in the keychain only.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DEFAULT_SETTINGS, validateSettings, type Settings, type SettingsValidation } from './settings.js';

export interface LoadedSettings {
  settings: Settings;
  /** Set when the file could not be used and defaults were taken instead. */
  problem?: string;
}

export class SettingsStore {
  readonly file: string;
  private current: Settings = DEFAULT_SETTINGS;

  constructor(userDataDir: string) {
    this.file = join(userDataDir, 'settings.json');
  }

  get settings(): Settings {
    return this.current;
  }

  async load(): Promise<LoadedSettings> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.current = DEFAULT_SETTINGS;
        return { settings: this.current };
      }
      return this.fallBack(`cannot read ${this.file}: ${(e as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return this.fallBack(`${this.file} is not valid JSON (${(e as Error).message}); it was kept as settings.json.invalid`, true);
    }
    // Fields added in later versions take their defaults.
    const v = validateSettings({ ...DEFAULT_SETTINGS, ...(typeof parsed === 'object' && parsed ? parsed : {}) });
    if (!v.ok) {
      const why = Object.entries(v.errors).map(([k, m]) => `${k}: ${m}`).join('; ');
      return this.fallBack(`${this.file} has invalid settings (${why}); it was kept as settings.json.invalid`, true);
    }
    this.current = v.settings;
    return { settings: this.current };
  }

  /** Validates and writes; nothing is written when the settings are invalid. */
  async save(candidate: unknown): Promise<SettingsValidation> {
    const v = validateSettings(candidate);
    if (!v.ok) return v;
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(v.settings, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.file);
    this.current = v.settings;
    return v;
  }

  private async fallBack(problem: string, keepAside = false): Promise<LoadedSettings> {
    if (keepAside) await rename(this.file, `${this.file}.invalid`).catch(() => undefined);
    this.current = DEFAULT_SETTINGS;
    return { settings: this.current, problem };
  }
}
