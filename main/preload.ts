/**
 * The sandboxed preload: the only door between the windows and the main process. It exposes
 * exactly the contract's DesktopApi as `window.ctll`, one ipcRenderer.invoke per method, and
 * hands the page plain values only: never ipcRenderer, never an IPC event (its `sender` is
 * ipcRenderer). A sandboxed preload cannot require local files, so the build bundles this file
 * and the contract into dist/main/preload.cjs with only `electron` left as a require.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { IpcChannel, type DesktopApi, type StatusView } from './ipc-contract.js';

const api: DesktopApi = {
  getSettings: () => ipcRenderer.invoke(IpcChannel.GetSettings),
  saveSettings: (settings) => ipcRenderer.invoke(IpcChannel.SaveSettings, settings),
  testOllama: (url) => ipcRenderer.invoke(IpcChannel.TestOllama, url),
  getStatus: () => ipcRenderer.invoke(IpcChannel.GetStatus),
  onStatus: (callback) => {
    const listener = (_event: IpcRendererEvent, status: StatusView): void => callback(status);
    ipcRenderer.on(IpcChannel.StatusChanged, listener);
    return () => {
      ipcRenderer.removeListener(IpcChannel.StatusChanged, listener);
    };
  },
  signIn: () => ipcRenderer.invoke(IpcChannel.SignIn),
  signOut: async () => {
    await ipcRenderer.invoke(IpcChannel.SignOut);
  },
  getAbout: () => ipcRenderer.invoke(IpcChannel.GetAbout),
  openExternal: async (url) => {
    await ipcRenderer.invoke(IpcChannel.OpenExternal, url);
  },
  openLogs: async () => {
    await ipcRenderer.invoke(IpcChannel.OpenLogs);
  },
  listKeys: () => ipcRenderer.invoke(IpcChannel.ListKeys),
  createKey: (request) => ipcRenderer.invoke(IpcChannel.CreateKey, request),
  revokeKey: (id) => ipcRenderer.invoke(IpcChannel.RevokeKey, id),
  writeClipboard: async (text) => {
    await ipcRenderer.invoke(IpcChannel.WriteClipboard, text);
  },
};

contextBridge.exposeInMainWorld('ctll', api);
