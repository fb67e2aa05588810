/**
 * The Electron double's clipboard: plain text only (all the desktop app writes), kept in memory
 * like the system's; every write is reported to the test, and `clipboard` reads it back.
 */
import { control } from './control.js';

let text = '';

export const clipboard = {
  writeText(value: string, _type?: 'selection' | 'clipboard'): void {
    if (typeof value !== 'string') throw new TypeError('Insufficient number of arguments.');
    text = value;
    control.event('clipboard-write', { length: value.length });
  },
  readText(_type?: 'selection' | 'clipboard'): string {
    return text;
  },
};

control.on('clipboard', () => ({ text }));
