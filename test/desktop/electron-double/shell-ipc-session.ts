/**
 * shell, ipcMain and session as the desktop app meets them.
 *
 * - shell.openExternal resolves, or rejects like Electron's when the system has no browser to
 *   open (the test chooses: `shell` command); every call is reported to the test.
 * - ipcMain.handle: one handler per channel (a second throws, as Electron's does); the handler
 *   gets an IpcMainInvokeEvent whose senderFrame is the frame that called; a handler's error
 *   reaches the page as "Error invoking remote method '<channel>': <error>".
 * - session: preload scripts registered on a session (registerPreloadScript, setPreloads) run in
 *   every window of it, before the window's own preload; the permission handler is kept so the
 *   test can ask it.
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { control } from './control.js';

// ---- shell ----

let openExternalFailure: string | undefined;

export const shell = {
  async openExternal(url: string, _options?: unknown): Promise<void> {
    if (typeof url !== 'string') throw new TypeError('Insufficient number of arguments.');
    control.event('open-external', { url, ok: openExternalFailure === undefined, ...(openExternalFailure ? { error: openExternalFailure } : {}) });
    if (openExternalFailure !== undefined) throw new Error(openExternalFailure);
  },
  async openPath(path: string): Promise<string> {
    const error = existsSync(path) ? '' : 'Failed to open path';
    control.event('open-path', { path, error });
    return error;
  },
  showItemInFolder(path: string): void {
    control.event('show-item-in-folder', { path });
  },
  beep(): void {},
};

control.on('shell', (args) => {
  openExternalFailure = typeof args['openExternalFails'] === 'string' ? args['openExternalFails'] : undefined;
  return null;
});

// ---- ipcMain ----

export interface WebFrameMainLike {
  url: string;
  origin: string;
  name: string;
  top: WebFrameMainLike | null;
  parent: WebFrameMainLike | null;
  frameTreeNodeId: number;
  processId: number;
  routingId: number;
}

export interface InvokeEvent {
  type: 'frame';
  sender: unknown;
  senderFrame: WebFrameMainLike | null;
  processId: number;
  frameId: number;
}

type Handler = (event: InvokeEvent, ...args: unknown[]) => unknown;

class IpcMain extends EventEmitter {
  readonly #handlers = new Map<string, Handler>();

  handle(channel: string, handler: Handler): void {
    if (this.#handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
    if (typeof handler !== 'function') throw new Error(`Expected handler to be a function, but found type '${typeof handler}'`);
    this.#handlers.set(channel, handler);
  }

  handleOnce(channel: string, handler: Handler): void {
    this.handle(channel, (event, ...args) => {
      this.removeHandler(channel);
      return handler(event, ...args);
    });
  }

  removeHandler(channel: string): void {
    this.#handlers.delete(channel);
  }

  /** Not Electron API: what the renderer's ipcRenderer.invoke does in the main process. */
  async invoke(channel: string, event: InvokeEvent, args: unknown[]): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
    const handler = this.#handlers.get(channel);
    if (!handler) return { ok: false, error: `Error invoking remote method '${channel}': Error: No handler registered for '${channel}'` };
    try {
      // Results travel by structured clone: anything that cannot be cloned fails the call.
      return { ok: true, value: structuredClone(await handler(event, ...args)) };
    } catch (e) {
      console.error(`Error occurred in handler for '${channel}':`, e);
      return { ok: false, error: `Error invoking remote method '${channel}': ${String(e)}` };
    }
  }

  channels(): string[] {
    return [...this.#handlers.keys()].sort();
  }
}

export const ipcMain = new IpcMain();

// ---- session ----

export interface PreloadScript {
  id: string;
  type: 'frame' | 'service-worker';
  filePath: string;
}

type PermissionHandler = (webContents: unknown, permission: string, callback: (granted: boolean) => void, details: unknown) => void;

let nextPreloadId = 1;

export class Session extends EventEmitter {
  readonly #preloads: PreloadScript[] = [];
  permissionRequestHandler: PermissionHandler | null = null;
  permissionCheckHandler: unknown = null;

  registerPreloadScript(script: { type: 'frame' | 'service-worker'; filePath: string; id?: string }): string {
    const id = script.id ?? `preload-${nextPreloadId++}`;
    if (this.#preloads.some((p) => p.id === id)) throw new Error(`Cannot register preload script with existing ID '${id}'`);
    this.#preloads.push({ id, type: script.type, filePath: script.filePath });
    return id;
  }

  unregisterPreloadScript(id: string): void {
    const i = this.#preloads.findIndex((p) => p.id === id);
    if (i >= 0) this.#preloads.splice(i, 1);
  }

  getPreloadScripts(): PreloadScript[] {
    return this.#preloads.map((p) => ({ ...p }));
  }

  /** Deprecated in Electron, still there: replaces the frame preloads set this way. */
  setPreloads(paths: string[]): void {
    for (const p of this.#preloads.filter((p) => p.id.startsWith('legacy-'))) this.unregisterPreloadScript(p.id);
    paths.forEach((filePath, i) => this.#preloads.push({ id: `legacy-${i}`, type: 'frame', filePath }));
  }

  getPreloads(): string[] {
    return this.#preloads.filter((p) => p.id.startsWith('legacy-')).map((p) => p.filePath);
  }

  setPermissionRequestHandler(handler: PermissionHandler | null): void {
    this.permissionRequestHandler = handler;
  }

  setPermissionCheckHandler(handler: unknown): void {
    this.permissionCheckHandler = handler;
  }

  async clearCache(): Promise<void> {}

  async clearStorageData(): Promise<void> {}
}

let defaultSession: Session | undefined;

export const session = {
  get defaultSession(): Session {
    if (!defaultSession) throw new Error('Session can only be received when app is ready');
    return defaultSession;
  },
  fromPartition(_partition: string): Session {
    return session.defaultSession;
  },
};

/** The default session exists from 'ready' on, as in Electron. */
export function createDefaultSession(onCreated: (s: Session) => void): void {
  defaultSession = new Session();
  onCreated(defaultSession);
}
