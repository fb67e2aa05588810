/** The same small DOM helpers as the desktop's windows (one copy, bundled into each). */
export * from '../../../renderer/lib/dom.js';
