/**
 * Settings' "Use from other apps" (issue 9): the endpoint's two base URLs with copy buttons, the
 * keys of this computer (made, listed and revoked through the main process, in the store that
 * `npm run keys` uses), and after making one, its secret once with ready-to-paste settings and a
 * QR code. The secret lives only in this panel's DOM and in the closure of its copy buttons;
 * closing the panel empties both.
 */
import { keyNameProblem, parseExpiry, parseMachineList, parseModelList } from '@cloudtolocalllm/bridge/keys/key-input';
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import { byId, element, setDescribedBy } from '@cloudtolocalllm/dom';
import type { ClientKeyView, CreateKeyErrors, CreateKeyField, CreateKeyRequest, DesktopApi } from '../../main/ipc-contract.js';
import { clientSnippets, openAiBase, qrText } from './client-snippets.js';
import { MANAGEMENT_CHOICES } from './choices.js';
import { formatCount } from './format.js';
import { clearQr, drawQr } from './qr-canvas.js';

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const day = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString().slice(0, 16).replace('T', ' '));

export function startClientsSection(api: DesktopApi): { refresh(): Promise<void> } {
  const section = byId('clients', HTMLElement);
  const ollamaUrl = byId('ollama-base-url', HTMLElement);
  const openaiUrl = byId('openai-base-url', HTMLElement);
  const copyOllama = byId('copy-ollama-url', HTMLButtonElement);
  const copyOpenai = byId('copy-openai-url', HTMLButtonElement);
  const message = byId('clients-message', HTMLElement);
  const table = byId('key-table', HTMLTableElement);
  const list = byId('key-list', HTMLTableSectionElement);
  const empty = byId('key-list-empty', HTMLElement);
  const form = byId('key-form', HTMLFormElement);
  const name = byId('key-name', HTMLInputElement);
  const models = byId('key-models', HTMLInputElement);
  const machines = byId('key-machines', HTMLInputElement);
  const expires = byId('key-expires', HTMLInputElement);
  const formError = byId('key-form-error', HTMLElement);
  const create = byId('create-key', HTMLButtonElement);
  const panel = byId('new-key', HTMLElement);
  const secretBox = byId('new-key-secret', HTMLElement);
  const qr = byId('new-key-qr', HTMLCanvasElement);
  const snippets = byId('snippets', HTMLElement);

  const allowBoxes = new Map<ManagementEndpoint, HTMLInputElement>();
  const allowOptions = byId('key-allow-options', HTMLElement);
  for (const endpoint of MANAGEMENT_ENDPOINTS) {
    const id = `key-allow-${endpoint}`;
    const box = element('input', { attrs: { id, type: 'checkbox', value: endpoint } });
    allowBoxes.set(endpoint, box);
    allowOptions.append(element('div', { className: 'check' }, [box, element('label', { attrs: { for: id } }, [element('code', { text: endpoint }), ` ${MANAGEMENT_CHOICES[endpoint].label}`])]));
  }

  const fields: Record<CreateKeyField, { error: HTMLElement; control: HTMLElement }> = {
    name: { error: byId('key-name-error', HTMLElement), control: name },
    models: { error: byId('key-models-error', HTMLElement), control: models },
    allow: { error: byId('key-allow-error', HTMLElement), control: byId('key-allow', HTMLElement) },
    machines: { error: byId('key-machines-error', HTMLElement), control: machines },
    expires: { error: byId('key-expires-error', HTMLElement), control: expires },
  };
  const FIELDS = Object.keys(fields) as CreateKeyField[];

  let endpoint: string | null = null;
  let names = new Set<string>();

  function say(text: string, kind: 'ok' | 'error' | '' = ''): void {
    message.textContent = text;
    message.dataset['kind'] = kind;
  }

  async function copy(text: string, what: string): Promise<void> {
    try {
      await api.writeClipboard(text);
      say(`${what} copied.`, 'ok');
    } catch (error) {
      say(`${what} not copied: ${errorText(error)}`, 'error');
    }
  }
  copyOllama.addEventListener('click', () => endpoint && void copy(endpoint, 'Ollama base URL'));
  copyOpenai.addEventListener('click', () => endpoint && void copy(openAiBase(endpoint), 'OpenAI base URL'));

  function showErrors(errors: CreateKeyErrors): void {
    for (const field of FIELDS) {
      const { error, control } = fields[field];
      const text = errors[field];
      error.textContent = text ?? '';
      error.hidden = !text;
      if (text) control.setAttribute('aria-invalid', 'true');
      else control.removeAttribute('aria-invalid');
      setDescribedBy(control, error.id, Boolean(text));
    }
    formError.textContent = errors.form ?? '';
    formError.hidden = !errors.form;
    const first = FIELDS.find((f) => errors[f]);
    if (first === 'allow') allowBoxes.values().next().value?.focus();
    else if (first) fields[first].control.focus();
  }

  function readForm(): CreateKeyRequest {
    return { name: name.value, models: models.value, allow: MANAGEMENT_ENDPOINTS.filter((e) => allowBoxes.get(e)?.checked), machines: machines.value, expires: expires.value };
  }

  /** The same rules the main process applies (key-input.ts), so most mistakes are named before a round trip. */
  function check(request: CreateKeyRequest): CreateKeyErrors {
    const errors: CreateKeyErrors = {};
    const n = request.name.trim();
    const problem = keyNameProblem(n);
    if (problem) errors.name = problem;
    else if (names.has(n)) errors.name = `a key named "${n}" exists already; choose another name or revoke that one first`;
    const readers = [
      ['models', () => parseModelList(request.models)],
      ['machines', () => parseMachineList(request.machines)],
      ['expires', () => parseExpiry(request.expires)],
    ] as const;
    for (const [field, read] of readers) {
      if (!request[field].trim()) continue;
      try {
        read();
      } catch (e) {
        errors[field] = errorText(e);
      }
    }
    return errors;
  }

  function renderRow(key: ClientKeyView): HTMLTableRowElement {
    const scopes = [
      key.models ? `models: ${key.models.join(', ')}` : 'every model',
      key.allow.length ? `management: ${key.allow.join(', ')}` : 'no management',
      key.machines ? `computers: ${key.machines.join(', ')}` : 'every computer',
    ];
    if (key.expiresAt !== null) scopes.push(key.expired ? `expired ${day(key.expiresAt)}` : `expires ${day(key.expiresAt)}`);
    const revoke = element('button', { text: 'Revoke', attrs: { type: 'button', 'aria-label': `Revoke ${key.name}` } });
    const actions = element('td', {}, [revoke]);
    revoke.addEventListener('click', () => {
      // The confirm step in place: the row says what revoking does and asks once more.
      const question = element('span', { className: 'confirm', text: `Revoke "${key.name}"? Apps using it stop working within 2 s. ` });
      const yes = element('button', { text: 'Revoke it', attrs: { type: 'button', 'data-confirm': key.id } });
      const no = element('button', { text: 'Cancel', attrs: { type: 'button' } });
      actions.replaceChildren(question, yes, no);
      no.addEventListener('click', () => {
        actions.replaceChildren(revoke);
        revoke.focus();
      });
      yes.addEventListener('click', () => void revokeKey(key, yes));
      no.focus();
    });
    return element('tr', { attrs: { 'data-key-id': key.id } }, [
      element('td', { text: key.name }),
      element('td', {}, [element('code', { text: key.id })]),
      element('td', { text: scopes.join('; ') }),
      element('td', { text: day(key.createdAt) }),
      element('td', { text: key.lastUsedAt === null ? 'never' : day(key.lastUsedAt) }),
      element('td', { text: `${formatCount(key.requests)} requests, ${formatCount(key.tokensIn)} tokens in, ${formatCount(key.tokensOut)} out` }),
      actions,
    ]);
  }

  async function revokeKey(key: ClientKeyView, button: HTMLButtonElement): Promise<void> {
    button.setAttribute('aria-disabled', 'true');
    try {
      const result = await api.revokeKey(key.id);
      say(result.ok ? `Key "${result.name}" revoked.` : result.error, result.ok ? 'ok' : 'error');
    } catch (error) {
      say(`Not revoked: ${errorText(error)}`, 'error');
    }
    await refresh();
  }

  async function refresh(): Promise<void> {
    const view = await api.listKeys();
    endpoint = view.endpoint;
    ollamaUrl.textContent = endpoint ?? 'Not known yet: set the cloud server URL and sign in';
    openaiUrl.textContent = endpoint ? openAiBase(endpoint) : '—';
    copyOllama.disabled = copyOpenai.disabled = !endpoint;
    names = new Set(view.keys.map((k) => k.name));
    list.replaceChildren(...view.keys.map(renderRow));
    table.hidden = view.keys.length === 0;
    empty.hidden = view.keys.length > 0;
    empty.textContent = view.signedIn ? 'No keys yet.' : 'No keys yet. Sign in first: a key belongs to the account signed in here.';
    if (view.problem) say(view.problem, 'error');
    section.setAttribute('aria-busy', 'false');
  }

  let creating = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault(); // form-action 'none': keys are made over IPC
    void (async () => {
      if (creating) return;
      const request = readForm();
      const errors = check(request);
      showErrors(errors);
      if (Object.keys(errors).length) return;
      creating = true;
      create.setAttribute('aria-disabled', 'true');
      try {
        const result = await api.createKey(request);
        if (!result.ok) {
          showErrors(result.errors);
          return;
        }
        form.reset();
        showSecret(result.key, result.secret, result.endpoint);
        await refresh();
      } catch (error) {
        showErrors({ form: `Not created: ${errorText(error)}` });
      } finally {
        creating = false;
        create.removeAttribute('aria-disabled');
      }
    })();
  });

  function showSecret(key: ClientKeyView, secret: string, at: string | null): void {
    byId('new-key-name', HTMLElement).textContent = key.name;
    secretBox.textContent = secret;
    const base = at ?? endpoint;
    const parts: Node[] = [];
    if (base) {
      drawQr(qr, qrText(base, secret));
      qr.hidden = false;
      for (const s of clientSnippets(base, secret, key.models?.[0])) {
        const button = element('button', { text: 'Copy', attrs: { type: 'button', 'data-copy': s.id, 'aria-label': `Copy the ${s.title} settings` } });
        button.addEventListener('click', () => void copy(s.text, `${s.title} settings`));
        parts.push(element('div', { className: 'snippet', attrs: { 'data-snippet': s.id } }, [element('h4', { text: s.title }), element('pre', {}, [element('code', { text: s.text })]), button]));
      }
    } else {
      clearQr(qr);
      qr.hidden = true;
      parts.push(element('p', { className: 'hint', text: 'Set the cloud server URL and sign in to see the settings for your apps.' }));
    }
    snippets.replaceChildren(...parts);
    const copyKey = byId('copy-key', HTMLButtonElement);
    const fresh = copyKey.cloneNode(true) as HTMLButtonElement; // drops the previous key's listener
    copyKey.replaceWith(fresh);
    fresh.addEventListener('click', () => void copy(secret, 'Key'));
    panel.hidden = false;
    panel.scrollIntoView({ block: 'nearest' });
    fresh.focus();
  }

  /** Forgets the secret: out of the DOM, the canvas and every listener that held it. */
  function closeSecret(): void {
    secretBox.textContent = '';
    clearQr(qr);
    snippets.replaceChildren();
    const copyKey = byId('copy-key', HTMLButtonElement);
    copyKey.replaceWith(copyKey.cloneNode(true));
    panel.hidden = true;
    name.focus();
  }
  byId('close-new-key', HTMLButtonElement).addEventListener('click', closeSecret);
  // A window closed with the panel open forgets it too.
  window.addEventListener('pagehide', closeSecret);

  return { refresh };
}
