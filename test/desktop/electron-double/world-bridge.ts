/**
 * The page side of the double's windows, as JavaScript source for Chromium (this package has no
 * DOM types, so it is written as text).
 *
 * Electron runs a sandboxed, context-isolated window's preloads in an isolated world: same DOM as
 * the page, separate JavaScript globals, a `require` that gives only `electron` (contextBridge,
 * ipcRenderer, webFrame, webUtils, crashReporter), `events`, `timers` and `url`, and a limited
 * `process`. The double does the same with Chromium's own isolated worlds (CDP
 * Page.addScriptToEvaluateOnNewDocument with a worldName): the real preload file runs there,
 * before any page script, wrapped as Electron wraps it (require, process, Buffer, global,
 * setImmediate, clearImmediate, exports, module: no __dirname, no Node).
 *
 * contextBridge.exposeInMainWorld copies the API into the page's world as Electron does: values
 * copied and frozen, functions proxied (called synchronously, as in Electron), promises proxied,
 * errors reduced to their message. The two worlds talk through synchronous DOM events on the
 * document whose names carry a random nonce; nothing else is added to the page's globals.
 * ipcRenderer reaches the main process through a CDP binding that exists only in the isolated
 * world.
 */

/** Shared by both worlds: copies values across, proxies functions and promises. */
const BRIDGE_CORE = String.raw`function electronDoubleBridge(NONCE, SIDE) {
  const PEER = SIDE === 'main' ? 'iso' : 'main';
  const doc = document;
  const listen = EventTarget.prototype.addEventListener;
  const unlisten = EventTarget.prototype.removeEventListener;
  const dispatch = EventTarget.prototype.dispatchEvent;
  const Custom = CustomEvent;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const freeze = Object.freeze;
  const keys = Object.keys;
  const ownFunctions = new Map();
  const ownPromises = { next: 1 };
  const peerPromises = new Map();
  const handlers = Object.create(null);
  let nextFunction = 1;
  let seq = 0;

  const messageOf = (e) => (e && typeof e === 'object' && 'message' in e ? String(e.message) : String(e));

  function encode(value) {
    if (value === undefined) return { u: 1 };
    if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return { v: value };
    if (typeof value === 'function') {
      const id = nextFunction++;
      ownFunctions.set(id, value);
      return { f: id };
    }
    if (typeof value === 'object' && typeof value.then === 'function') {
      const id = ownPromises.next++;
      value.then(
        (v) => rpc({ op: 'settle', promise: id, ok: true, value: encode(v) }),
        (e) => rpc({ op: 'settle', promise: id, ok: false, message: messageOf(e) }),
      );
      return { p: id };
    }
    if (value instanceof Error) return { e: value.message };
    if (Array.isArray(value)) return { a: value.map(encode) };
    if (typeof value === 'object') {
      const o = {};
      for (const k of keys(value)) o[k] = encode(value[k]);
      return { o };
    }
    return { u: 1 };
  }

  function decode(t) {
    if ('u' in t) return undefined;
    if ('v' in t) return t.v;
    if ('f' in t) {
      const id = t.f;
      return function () {
        const reply = rpc({ op: 'call', fn: id, args: Array.prototype.map.call(arguments, encode) });
        if (!reply) throw new Error('the other side of the context bridge is gone');
        if (!reply.ok) throw new Error(reply.message);
        return decode(reply.value);
      };
    }
    if ('p' in t) return new Promise((resolve, reject) => peerPromises.set(t.p, { resolve, reject }));
    if ('e' in t) return new Error(t.e);
    const frozen = (x) => (SIDE === 'main' ? freeze(x) : x);
    if ('a' in t) return frozen(t.a.map(decode));
    const o = {};
    for (const k of keys(t.o)) o[k] = decode(t.o[k]);
    return frozen(o);
  }

  function rpc(message) {
    const id = SIDE + ':' + ++seq;
    let reply;
    const onReply = (e) => {
      const r = parse(e.detail);
      if (r.id === id) reply = r;
    };
    listen.call(doc, NONCE + ':reply-' + SIDE, onReply);
    try {
      dispatch.call(doc, new Custom(NONCE + ':to-' + PEER, { detail: stringify(Object.assign({}, message, { id })) }));
    } finally {
      unlisten.call(doc, NONCE + ':reply-' + SIDE, onReply);
    }
    return reply;
  }

  listen.call(doc, NONCE + ':to-' + SIDE, (e) => {
    const message = parse(e.detail);
    const handler = handlers[message.op];
    const answer = handler ? handler(message) : { ok: false, message: 'unknown bridge message ' + message.op };
    dispatch.call(doc, new Custom(NONCE + ':reply-' + PEER, { detail: stringify(Object.assign({}, answer, { id: message.id })) }));
  });

  handlers.call = (m) => {
    const fn = ownFunctions.get(m.fn);
    if (!fn) return { ok: false, message: 'this function is no longer available' };
    try {
      return { ok: true, value: encode(fn.apply(undefined, m.args.map(decode))) };
    } catch (e) {
      return { ok: false, message: messageOf(e) };
    }
  };
  handlers.settle = (m) => {
    const p = peerPromises.get(m.promise);
    if (p) {
      peerPromises.delete(m.promise);
      if (m.ok) p.resolve(decode(m.value));
      else p.reject(new Error(m.message));
    }
    return { ok: true };
  };
  return { encode, decode, rpc, handlers };
}`;

/** The page's world: receives what the preloads expose, and nothing else. */
export function mainWorldScript(nonce: string): string {
  return `(() => {
  const bridge = (${BRIDGE_CORE})(${JSON.stringify(nonce)}, 'main');
  bridge.handlers.expose = (m) => {
    if (m.key in window) return { ok: false, message: 'Cannot bind an API on top of an existing property on the window object' };
    Object.defineProperty(window, m.key, { value: bridge.decode(m.value), enumerable: true, configurable: false, writable: false });
    return { ok: true };
  };
  bridge.rpc({ op: 'main-ready' });
})();`;
}

export interface PreloadSource {
  path: string;
  source: string;
}

/** The preloads' isolated world: Electron's sandboxed preload environment around each file. */
export function isolatedWorldScript(options: { nonce: string; binding: string; preloads: PreloadSource[]; process: Record<string, unknown> }): string {
  const runners = options.preloads
    .map(
      (p) =>
        `{ path: ${JSON.stringify(p.path)}, run: function (require, process, Buffer, global, setImmediate, clearImmediate, exports, module) {\n${p.source}\n} }`,
    )
    .join(',\n');
  return `(() => {
  const toNode = ((binding) => (message) => binding(JSON.stringify(message)))(globalThis[${JSON.stringify(options.binding)}]);
  const bridge = (${BRIDGE_CORE})(${JSON.stringify(options.nonce)}, 'iso');

  // contextBridge: exposures made before the page's world is listening wait for it.
  const queued = [];
  bridge.handlers['main-ready'] = () => {
    while (queued.length) bridge.rpc(queued.shift());
    return { ok: true };
  };
  const contextBridge = {
    exposeInMainWorld(key, api) {
      if (typeof key !== 'string') throw new TypeError('Error processing argument at index 0, conversion failure from ' + key);
      const message = { op: 'expose', key, value: bridge.encode(api) };
      const reply = bridge.rpc(message);
      if (reply === undefined) queued.push(message);
      else if (!reply.ok) throw new Error(reply.message);
    },
    exposeInIsolatedWorld() {
      throw new Error('contextBridge.exposeInIsolatedWorld is not provided by the Electron double');
    },
  };

  // ipcRenderer: invoke and send go to the main process; main's webContents.send comes back here.
  const invokes = new Map();
  const listeners = new Map();
  let nextInvoke = 1;
  const clone = (args) => JSON.parse(JSON.stringify(structuredClone(args)) ?? 'null');
  const ipcRenderer = {
    invoke(channel, ...args) {
      return new Promise((resolve, reject) => {
        const invoke = nextInvoke++;
        invokes.set(invoke, { resolve, reject });
        toNode({ op: 'invoke', invoke, channel: String(channel), args: clone(args) });
      });
    },
    send(channel, ...args) {
      toNode({ op: 'send', channel: String(channel), args: clone(args) });
    },
    sendSync() {
      throw new Error('ipcRenderer.sendSync is not provided by the Electron double');
    },
    on(channel, listener) {
      if (!listeners.has(channel)) listeners.set(channel, []);
      listeners.get(channel).push(listener);
      return ipcRenderer;
    },
    once(channel, listener) {
      const wrapped = (...a) => {
        ipcRenderer.removeListener(channel, wrapped);
        listener(...a);
      };
      return ipcRenderer.on(channel, wrapped);
    },
    removeListener(channel, listener) {
      const list = listeners.get(channel) ?? [];
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
      return ipcRenderer;
    },
    off(channel, listener) {
      return ipcRenderer.removeListener(channel, listener);
    },
    removeAllListeners(channel) {
      if (channel === undefined) listeners.clear();
      else listeners.delete(channel);
      return ipcRenderer;
    },
    listenerCount(channel) {
      return (listeners.get(channel) ?? []).length;
    },
  };
  globalThis.__electronDoubleFromNode = (json) => {
    const m = JSON.parse(json);
    if (m.op === 'reply') {
      const pending = invokes.get(m.invoke);
      invokes.delete(m.invoke);
      if (pending) m.ok ? pending.resolve(m.value) : pending.reject(new Error(m.error));
    } else if (m.op === 'deliver') {
      const event = { sender: ipcRenderer, ports: [] };
      for (const listener of [...(listeners.get(m.channel) ?? [])]) listener(event, ...m.args);
    }
  };

  class EventEmitter {
    constructor() { this._events = new Map(); }
    on(name, fn) { if (!this._events.has(name)) this._events.set(name, []); this._events.get(name).push(fn); return this; }
    addListener(name, fn) { return this.on(name, fn); }
    once(name, fn) { const w = (...a) => { this.off(name, w); fn(...a); }; return this.on(name, w); }
    off(name, fn) { const l = this._events.get(name) ?? []; const i = l.indexOf(fn); if (i >= 0) l.splice(i, 1); return this; }
    removeListener(name, fn) { return this.off(name, fn); }
    removeAllListeners(name) { if (name === undefined) this._events.clear(); else this._events.delete(name); return this; }
    emit(name, ...a) { const l = [...(this._events.get(name) ?? [])]; for (const fn of l) fn.apply(this, a); return l.length > 0; }
    listenerCount(name) { return (this._events.get(name) ?? []).length; }
  }
  EventEmitter.EventEmitter = EventEmitter;

  const modules = {
    electron: {
      contextBridge,
      ipcRenderer,
      webFrame: { setZoomFactor() {}, getZoomFactor: () => 1, setVisualZoomLevelLimits() {} },
      webUtils: { getPathForFile() { throw new Error('webUtils.getPathForFile is not provided by the Electron double'); } },
      crashReporter: { addExtraParameter() {}, removeExtraParameter() {}, getParameters: () => ({}) },
    },
    events: EventEmitter,
    timers: { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate: (f, ...a) => setTimeout(f, 0, ...a), clearImmediate: clearTimeout },
    url: { URL, URLSearchParams },
  };
  const preloadRequire = (name) => {
    if (Object.prototype.hasOwnProperty.call(modules, name)) return modules[name];
    throw new Error('module not found: ' + name);
  };
  const preloadProcess = Object.assign(new EventEmitter(), ${JSON.stringify(options.process)});

  toNode({ op: 'hello', url: location.href });
  const preloads = [${runners}];
  for (const preload of preloads) {
    const module = { exports: {} };
    try {
      preload.run(preloadRequire, preloadProcess, undefined, globalThis, modules.timers.setImmediate, modules.timers.clearImmediate, module.exports, module);
    } catch (e) {
      toNode({ op: 'preload-error', path: preload.path, message: String((e && e.stack) || e) });
    }
  }
})();`;
}
