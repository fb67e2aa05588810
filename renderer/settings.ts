/**
 * The Settings window: the form over the Settings object, the Ollama test, the account and
 * the live connection details. Checks each field with the same validateSettings the main
 * process uses, so what this window accepts is what gets saved.
 */
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import type { DesktopApi, StatusView } from '../main/ipc-contract.js';
import { LOG_LEVELS, validateSettings, type LogLevel, type Settings, type SettingsErrors } from '../main/settings/settings.js';
import { LOG_LEVEL_LABELS, MANAGEMENT_CHOICES } from './lib/choices.js';
import { startClientsSection } from './lib/clients-section.js';
import { desktopApi, reportFatal } from './lib/desktop-api.js';
import { byId, element, setDescribedBy } from '@cloudtolocalllm/dom';
import {
  describeAccount,
  describeBridge,
  describeOllama,
  describeOllamaTest,
  formatBytes,
  formatCount,
  formatSince,
} from './lib/format.js';

type Field = keyof Settings;

interface FieldUi {
  error: HTMLElement;
  /** The controls that carry aria-invalid and point at the error. */
  controls: HTMLElement[];
  /** Where focus goes when this field is the first wrong one. */
  focus: () => HTMLElement;
}

const form = byId('settings-form', HTMLFormElement);
const cloudUrl = byId('cloudServerUrl', HTMLInputElement);
const ollamaUrl = byId('ollamaUrl', HTMLInputElement);
const startAtLogin = byId('startAtLogin', HTMLInputElement);
const startMinimized = byId('startMinimized', HTMLInputElement);
const logLevel = byId('logLevel', HTMLSelectElement);
const testButton = byId('test-ollama', HTMLButtonElement);
const testResult = byId('ollama-test-result', HTMLElement);
const formMessage = byId('form-message', HTMLElement);
const signIn = byId('sign-in', HTMLButtonElement);
const signOut = byId('sign-out', HTMLButtonElement);
const accountMessage = byId('account-message', HTMLElement);

const managementBoxes = new Map<ManagementEndpoint, HTMLInputElement>();
const options = byId('allowManagement-options', HTMLElement);
for (const endpoint of MANAGEMENT_ENDPOINTS) {
  const choice = MANAGEMENT_CHOICES[endpoint];
  const id = `allow-${endpoint}`;
  const box = element('input', { attrs: { id, type: 'checkbox', name: 'allowManagement', value: endpoint, 'aria-describedby': `${id}-hint` } });
  managementBoxes.set(endpoint, box);
  options.append(
    element('div', { className: 'check' }, [
      box,
      element('label', { attrs: { for: id } }, [element('code', { text: `/api/${endpoint}` }), ` ${choice.label}`]),
      element('p', { className: 'hint', text: choice.explanation, attrs: { id: `${id}-hint` } }),
    ]),
  );
}
for (const level of LOG_LEVELS) logLevel.append(element('option', { text: LOG_LEVEL_LABELS[level], attrs: { value: level } }));

const boxes = [...managementBoxes.values()];
// Declared in the order the fields appear, so "the first wrong field" is the first on screen.
const fields: Record<Field, FieldUi> = {
  cloudServerUrl: { error: byId('cloudServerUrl-error', HTMLElement), controls: [cloudUrl], focus: () => cloudUrl },
  ollamaUrl: { error: byId('ollamaUrl-error', HTMLElement), controls: [ollamaUrl], focus: () => ollamaUrl },
  startAtLogin: { error: byId('startAtLogin-error', HTMLElement), controls: [startAtLogin], focus: () => startAtLogin },
  startMinimized: { error: byId('startMinimized-error', HTMLElement), controls: [startMinimized], focus: () => startMinimized },
  allowManagement: {
    error: byId('allowManagement-error', HTMLElement),
    controls: boxes,
    focus: () => boxes.find((b) => b.checked) ?? boxes[0] ?? form,
  },
  logLevel: { error: byId('logLevel-error', HTMLElement), controls: [logLevel], focus: () => logLevel },
};
const FIELD_ORDER = Object.keys(fields) as Field[];

function readForm(): Settings {
  return {
    cloudServerUrl: cloudUrl.value,
    ollamaUrl: ollamaUrl.value,
    startAtLogin: startAtLogin.checked,
    startMinimized: startMinimized.checked,
    allowManagement: MANAGEMENT_ENDPOINTS.filter((e) => managementBoxes.get(e)?.checked),
    // validateSettings rejects anything that is not a level, so the cast only names the type.
    logLevel: logLevel.value as LogLevel,
  };
}

function fillForm(settings: Settings): void {
  cloudUrl.value = settings.cloudServerUrl;
  ollamaUrl.value = settings.ollamaUrl;
  startAtLogin.checked = settings.startAtLogin;
  startMinimized.checked = settings.startMinimized;
  for (const [endpoint, box] of managementBoxes) box.checked = settings.allowManagement.includes(endpoint);
  logLevel.value = settings.logLevel;
}

function setFieldError(field: Field, message: string | undefined): void {
  const ui = fields[field];
  ui.error.textContent = message ?? '';
  ui.error.hidden = !message;
  for (const control of ui.controls) {
    if (message) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
    setDescribedBy(control, ui.error.id, Boolean(message));
  }
}

function hasError(field: Field): boolean {
  return !fields[field].error.hidden;
}

/** Shows every error in place (clearing the rest) and focuses the first wrong field. */
function showErrors(errors: SettingsErrors, prefix: string): void {
  for (const field of FIELD_ORDER) setFieldError(field, errors[field]);
  const wrong = FIELD_ORDER.filter((f) => errors[f]);
  // Errors for fields this window does not know (a newer main process) still reach the user.
  const unknown = Object.entries(errors as Record<string, string | undefined>)
    .filter(([key, message]) => message && !(FIELD_ORDER as string[]).includes(key))
    .map(([, message]) => message);
  const count = wrong.length === 1 ? 'the highlighted field' : `the ${wrong.length} highlighted fields`;
  setMessage([wrong.length ? `${prefix}: check ${count}.` : `${prefix}.`, ...unknown].join(' '), 'error');
  const first = wrong[0];
  if (first) fields[first].focus().focus();
}

function setMessage(text: string, kind: 'ok' | 'error' | 'pending' | '' = ''): void {
  formMessage.textContent = text;
  formMessage.dataset['kind'] = kind;
}

/** Re-checks one field from the whole form, as validateSettings only works on a whole object. */
function checkField(field: Field, mode: 'report' | 'clear-only'): void {
  const result = validateSettings(readForm());
  const message = result.ok ? undefined : result.errors[field];
  if (mode === 'report' || !message) setFieldError(field, message);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let api: DesktopApi;
let saving = false;

async function save(): Promise<void> {
  if (saving) return;
  const checked = validateSettings(readForm());
  if (!checked.ok) {
    showErrors(checked.errors, 'Not saved');
    return;
  }
  for (const field of FIELD_ORDER) setFieldError(field, undefined);
  saving = true;
  form.setAttribute('aria-busy', 'true');
  setMessage('Saving…', 'pending');
  try {
    const result = await api.saveSettings(checked.settings);
    if (result.ok) {
      fillForm(result.settings);
      setMessage('Saved.', 'ok');
    } else {
      showErrors(result.errors, 'Not saved');
    }
  } catch (error) {
    setMessage(`Not saved: ${errorText(error)}`, 'error');
  } finally {
    saving = false;
    form.setAttribute('aria-busy', 'false');
  }
}

let testRun = 0;
async function testOllama(): Promise<void> {
  const run = ++testRun;
  checkField('ollamaUrl', 'report');
  if (hasError('ollamaUrl')) {
    testResult.textContent = '';
    ollamaUrl.focus();
    return;
  }
  const url = ollamaUrl.value.trim().replace(/\/+$/, '');
  testResult.textContent = `Testing ${url}…`;
  testResult.dataset['kind'] = 'pending';
  try {
    const result = await api.testOllama(url);
    if (run !== testRun) return; // a newer test, or an edit, made this answer stale
    testResult.textContent = describeOllamaTest(result);
    testResult.dataset['kind'] = result.ok ? 'ok' : 'error';
  } catch (error) {
    if (run !== testRun) return;
    testResult.textContent = errorText(error);
    testResult.dataset['kind'] = 'error';
  }
}

let lastStatus: StatusView | undefined;
let clients: ReturnType<typeof startClientsSection> | undefined;
function renderStatus(status: StatusView): void {
  // A sign-in or sign-out changes the account, and so the endpoint, that keys belong to.
  if (lastStatus && lastStatus.account.signedIn !== status.account.signedIn) void clients?.refresh().catch(reportFatal);
  lastStatus = status;
  byId('status-line', HTMLElement).textContent = status.statusLine;
  byId('account-summary', HTMLElement).textContent = describeAccount(status.account);
  // Keep keyboard users where they were when the button they are on is swapped for its twin.
  const focused = document.activeElement;
  signIn.hidden = status.account.signedIn;
  signOut.hidden = !status.account.signedIn;
  if (focused === signIn && signIn.hidden) signOut.focus();
  if (focused === signOut && signOut.hidden) signIn.focus();
  byId('detail-state', HTMLElement).textContent = describeBridge(status.bridge);
  byId('detail-since', HTMLElement).textContent = formatSince(status.bridge.connectedSince, Date.now());
  byId('detail-requests', HTMLElement).textContent = formatCount(status.counters.requests);
  byId('detail-bytes-in', HTMLElement).textContent = formatBytes(status.counters.bytesIn);
  byId('detail-bytes-out', HTMLElement).textContent = formatBytes(status.counters.bytesOut);
  byId('detail-streams', HTMLElement).textContent = formatCount(status.counters.activeStreams);
  byId('detail-proxy', HTMLElement).textContent = status.proxy.detail ? `${status.proxy.state}: ${status.proxy.detail}` : status.proxy.state;
  byId('detail-ollama', HTMLElement).textContent = describeOllama(status.ollama);
  const keychain = byId('detail-keychain', HTMLElement);
  keychain.textContent = status.keychain.detail;
  keychain.dataset['kind'] = status.keychain.available ? 'ok' : 'warn';
  document.body.dataset['trayState'] = status.trayState;
}

async function runAccountAction(button: HTMLButtonElement, action: () => Promise<string | undefined>, pending: string): Promise<void> {
  if (button.getAttribute('aria-disabled') === 'true') return;
  button.setAttribute('aria-disabled', 'true');
  accountMessage.textContent = pending;
  try {
    accountMessage.textContent = (await action()) ?? '';
    renderStatus(await api.getStatus());
  } catch (error) {
    accountMessage.textContent = errorText(error);
  } finally {
    button.removeAttribute('aria-disabled');
  }
}

async function start(): Promise<void> {
  api = desktopApi();
  form.addEventListener('submit', (event) => {
    event.preventDefault(); // form-action 'none': the form never goes anywhere, Save is IPC
    void save();
  });
  for (const [field, input] of [['cloudServerUrl', cloudUrl], ['ollamaUrl', ollamaUrl]] as const) {
    input.addEventListener('blur', () => checkField(field, 'report'));
    // While typing, only take an error away once it is fixed; new ones wait for the blur.
    input.addEventListener('input', () => hasError(field) && checkField(field, 'clear-only'));
  }
  ollamaUrl.addEventListener('input', () => {
    testRun++;
    testResult.textContent = '';
  });
  for (const [field, control] of [['startAtLogin', startAtLogin], ['startMinimized', startMinimized], ['logLevel', logLevel]] as const) {
    control.addEventListener('change', () => checkField(field, 'report'));
  }
  for (const box of boxes) box.addEventListener('change', () => checkField('allowManagement', 'report'));
  testButton.addEventListener('click', () => void testOllama());
  byId('open-logs', HTMLButtonElement).addEventListener('click', () => void api.openLogs().catch(reportFatal));
  signIn.addEventListener('click', () =>
    void runAccountAction(signIn, async () => {
      const result = await api.signIn();
      return result.ok ? undefined : result.error;
    }, 'Continue in your browser…'),
  );
  signOut.addEventListener('click', () => void runAccountAction(signOut, async () => void (await api.signOut()), 'Signing out…'));

  // Subscribe before asking, so no change falls between the answer and the subscription.
  const unsubscribe = api.onStatus(renderStatus);
  window.addEventListener('pagehide', unsubscribe);
  // "Connected for 3 min" ages even when nothing else changes.
  setInterval(() => lastStatus && renderStatus(lastStatus), 30_000);

  clients = startClientsSection(api);
  const [settings, status] = await Promise.all([api.getSettings(), api.getStatus(), clients.refresh()]);
  fillForm(settings);
  if (!lastStatus) renderStatus(status);
  form.setAttribute('aria-busy', 'false');
  document.body.dataset['ready'] = 'true';
}

start().catch(reportFatal);
