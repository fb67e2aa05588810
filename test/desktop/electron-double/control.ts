/**
 * The double's line to the test that started the app: JSON lines over the Unix socket named by
 * CTLL_DOUBLE_CONTROL. The app side reports events (tray changed, window shown, browser opened,
 * quit...) and answers commands (click a tray item, act in a window, read the state).
 */
import net from 'node:net';
import { createInterface } from 'node:readline';

export type CommandHandler = (args: Record<string, unknown>) => unknown;

export class Control {
  readonly #socket: net.Socket | undefined;
  readonly #handlers = new Map<string, CommandHandler>();
  #flush: (() => void) | undefined;
  #onClose: (() => void) | undefined;

  constructor(path: string | undefined) {
    if (!path) {
      this.#socket = undefined;
      return;
    }
    this.#socket = net.connect(path);
    // The app's life is the double's "message loop" (see app.ts), not this socket.
    this.#socket.unref();
    createInterface({ input: this.#socket }).on('line', (line) => {
      if (line.trim()) void this.#run(JSON.parse(line) as { id: number; command: string; args?: Record<string, unknown> });
    });
    this.#socket.on('error', () => undefined); // 'close' follows
    this.#socket.on('close', () => this.#onClose?.());
  }

  /** The test went away: an app left alone must end rather than linger. */
  onClose(handler: () => void): void {
    this.#onClose = handler;
  }

  on(command: string, handler: CommandHandler): void {
    this.#handlers.set(command, handler);
  }

  /** Runs a command's handler here (one command built on another). */
  async run(command: string, args: Record<string, unknown>): Promise<unknown> {
    const handler = this.#handlers.get(command);
    if (!handler) throw new Error(`the Electron double has no command "${command}"`);
    return handler(args);
  }

  /** Runs before every event: a report held back (the tray's) goes out first, in order. */
  beforeEvents(flush: () => void): void {
    this.#flush = flush;
  }

  event(name: string, data: Record<string, unknown> = {}): void {
    this.#flush?.();
    this.#write({ event: name, ...data });
  }

  /** Sends the last event and resolves once it is written (before the process exits). */
  close(name: string, data: Record<string, unknown>): Promise<void> {
    this.#flush?.();
    return new Promise((resolve) => {
      if (!this.#socket || this.#socket.destroyed) {
        resolve();
        return;
      }
      this.#socket.end(`${JSON.stringify({ event: name, ...data })}\n`, () => resolve());
    });
  }

  #write(message: Record<string, unknown>): void {
    if (!this.#socket || this.#socket.destroyed || !this.#socket.writable) return;
    this.#socket.write(`${JSON.stringify(message)}\n`);
  }

  async #run(message: { id: number; command: string; args?: Record<string, unknown> }): Promise<void> {
    const handler = this.#handlers.get(message.command);
    try {
      if (!handler) throw new Error(`the Electron double has no command "${message.command}"`);
      const value = await handler(message.args ?? {});
      this.#write({ reply: message.id, ok: true, value: value ?? null });
    } catch (e) {
      this.#write({ reply: message.id, ok: false, error: e instanceof Error ? e.message : String(e) });
    }
  }
}

export const control = new Control(process.env['CTLL_DOUBLE_CONTROL']);
