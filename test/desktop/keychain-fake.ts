/**
 * An in-memory stand-in for keytar, for the token store's own rules (shape checks, corrupt
 * entries, timeouts). The real keychain is exercised by sign-in-browser.test.ts.
 */
import type { KeytarApi } from '../../main/auth/token-store.js';

export type FakeKeytarMode =
  /** Answers like a working keychain. */
  | 'ok'
  /** Every call rejects, like keytar without a D-Bus session bus. */
  | 'fail'
  /** No call ever settles, like keytar on a bus where nothing answers. */
  | 'hang';

export class FakeKeytar implements KeytarApi {
  readonly entries = new Map<string, string>();
  readonly calls: string[] = [];
  mode: FakeKeytarMode;
  failure = 'Cannot autolaunch D-Bus without X11 $DISPLAY';

  constructor(mode: FakeKeytarMode = 'ok') {
    this.mode = mode;
  }

  static key(service: string, account: string): string {
    return `${service}\n${account}`;
  }

  #answer<T>(call: string, value: () => T): Promise<T> {
    this.calls.push(call);
    if (this.mode === 'hang') return new Promise<T>(() => {});
    if (this.mode === 'fail') return Promise.reject(new Error(this.failure));
    return Promise.resolve().then(value);
  }

  getPassword = (service: string, account: string): Promise<string | null> =>
    this.#answer('getPassword', () => this.entries.get(FakeKeytar.key(service, account)) ?? null);

  setPassword = (service: string, account: string, password: string): Promise<void> =>
    this.#answer('setPassword', () => {
      this.entries.set(FakeKeytar.key(service, account), password);
    });

  deletePassword = (service: string, account: string): Promise<boolean> =>
    this.#answer('deletePassword', () => this.entries.delete(FakeKeytar.key(service, account)));

  findCredentials = (service: string): Promise<Array<{ account: string; password: string }>> =>
    this.#answer('findCredentials', () =>
      [...this.entries].flatMap(([key, password]) => {
        const [entryService, account = ''] = key.split('\n');
        return entryService === service ? [{ account, password }] : [];
      }),
    );
}
