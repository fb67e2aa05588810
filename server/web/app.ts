/**
 * The web client (/app/): sign in, see whether your computer is connected, pick one of its
 * models and chat with it, the answer streaming in token by token. Nothing of the conversation
 * is kept on the server; the browser keeps it only when "Keep history in this browser" is on.
 */
import { ApiProblem, CloudApi, isAbort, type ChatMessage, type ModelInfo } from './lib/api.js';
import { CONFIG_PATH, OLLAMA_PREFIX, type ClientConfig, type ComputerStatus } from '@cloudtolocalllm/api-contract';
import { WebAuth, type User } from './lib/auth.js';
import { byId, element } from '@cloudtolocalllm/dom';
import { BrowserHistory, isChatMessage } from './lib/history.js';
import { GarbledStream, ndjsonLines, readChatChunk } from './lib/ndjson.js';

/** How often the page asks whether the bridge is connected (while the tab is visible). */
const POLL_MS = 3_000;
/** A stopped proxy is started again at most this often. */
const START_RETRY_MS = 15_000;
const APP_PATH = '/app/';
const MODEL_KEY = 'ctll.model';

type BridgeState = 'unknown' | 'starting' | 'connected' | 'not-connected' | 'error';

/** The page's elements; a missing one fails at start, loudly. */
function findUi() {
  return {
    main: byId('main', HTMLElement),
    fatal: byId('fatal', HTMLParagraphElement),
    pageStatus: byId('page-status', HTMLParagraphElement),
    account: byId('account', HTMLDivElement),
    accountName: byId('account-name', HTMLElement),
    signOut: byId('sign-out', HTMLButtonElement),
    signedOut: byId('signed-out', HTMLElement),
    signIn: byId('sign-in', HTMLButtonElement),
    signInError: byId('sign-in-error', HTMLParagraphElement),
    chat: byId('chat', HTMLElement),
    bridge: byId('bridge', HTMLDivElement),
    bridgeStatus: byId('bridge-status', HTMLParagraphElement),
    bridgeHelp: byId('bridge-help', HTMLParagraphElement),
    computers: byId('computers', HTMLUListElement),
    model: byId('model', HTMLSelectElement),
    reloadModels: byId('reload-models', HTMLButtonElement),
    modelsNote: byId('models-note', HTMLParagraphElement),
    conversation: byId('conversation', HTMLOListElement),
    emptyNote: byId('empty-note', HTMLParagraphElement),
    chatError: byId('chat-error', HTMLDivElement),
    composer: byId('composer', HTMLFormElement),
    prompt: byId('prompt', HTMLTextAreaElement),
    send: byId('send', HTMLButtonElement),
    stop: byId('stop', HTMLButtonElement),
    keepHistory: byId('keep-history', HTMLInputElement),
    clear: byId('clear', HTMLButtonElement),
  };
}

let ui: ReturnType<typeof findUi>;

interface MessageView {
  item: HTMLLIElement;
  text: Text;
  note: HTMLParagraphElement;
}

interface Generation {
  controller: AbortController;
  view: MessageView;
}

let auth: WebAuth;
let api: CloudApi;
let history: BrowserHistory | undefined;
let messages: ChatMessage[] = [];
let generating: Generation | undefined;
let bridgeState: BridgeState = 'unknown';
let pollTimer: ReturnType<typeof setTimeout> | undefined;
let polling = false;
let lastStartAttempt = 0;
let modelsLoaded = false;
let modelsLoading = false;
/** Loading failed with an answer (not a lost connection): wait for Reload or a reconnection. */
let modelsFailed = false;
let signedIn = false;
/** Who was signed in, still known after a refused token made the session go. */
let lastUser: User | undefined;

// ---------------------------------------------------------------- messages to the person

let announceTimer: ReturnType<typeof setTimeout> | undefined;

/** Says something short in the status line (polite live region); it goes away after a while. */
function announce(text: string): void {
  clearTimeout(announceTimer);
  ui.pageStatus.textContent = text;
  if (text) announceTimer = setTimeout(() => (ui.pageStatus.textContent = ''), 8_000);
}

function clearError(): void {
  ui.chatError.hidden = true;
  ui.chatError.replaceChildren();
  delete ui.chatError.dataset['kind'];
}

/** Shows an error in place, above the message box (role=alert); a sign-in problem offers to sign in. */
function showError(message: string, kind: string = 'failed'): void {
  const children: Node[] = [element('p', { text: message })];
  if (kind === 'sign-in') {
    const again = element('button', { className: 'primary', text: 'Sign in again', attrs: { type: 'button' } });
    again.addEventListener('click', () => void signIn());
    children.push(again);
  }
  ui.chatError.dataset['kind'] = kind;
  ui.chatError.replaceChildren(...children);
  ui.chatError.hidden = false;
}

function showFatal(message: string): void {
  // Not through `ui`: this also reports a page that is missing one of its elements.
  const fatal = document.getElementById('fatal');
  if (fatal) {
    fatal.textContent = message;
    fatal.hidden = false;
  }
  document.getElementById('main')?.setAttribute('aria-busy', 'false');
  document.body.dataset['ready'] = 'true';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------- signed out / signed in

function showSignedOut(error?: string): void {
  signedIn = false;
  stopPolling();
  generating?.controller.abort();
  ui.chat.hidden = true;
  ui.account.hidden = true;
  ui.signedOut.hidden = false;
  ui.signInError.hidden = !error;
  ui.signInError.textContent = error ? `Sign-in failed: ${error}` : '';
}

/**
 * Signing in again leaves the page. The conversation and the unsent message ride along in this
 * tab's sessionStorage (never further) and come back after the redirect.
 */
const CARRY_KEY = 'ctll.carry';

function carryConversation(): void {
  const user = auth.user ?? lastUser;
  if (!user || (messages.length === 0 && !ui.prompt.value)) return;
  sessionStorage.setItem(CARRY_KEY, JSON.stringify({ sub: user.sub, messages, draft: ui.prompt.value }));
}

function takeCarried(sub: string): { messages: ChatMessage[]; draft: string } | undefined {
  const raw = sessionStorage.getItem(CARRY_KEY);
  sessionStorage.removeItem(CARRY_KEY);
  try {
    const carried = raw ? (JSON.parse(raw) as { sub?: unknown; messages?: unknown; draft?: unknown }) : undefined;
    if (!carried || carried.sub !== sub || !Array.isArray(carried.messages)) return undefined;
    return { messages: carried.messages.filter(isChatMessage), draft: typeof carried.draft === 'string' ? carried.draft : '' };
  } catch {
    return undefined;
  }
}

async function signIn(): Promise<void> {
  ui.signIn.disabled = true;
  if (signedIn) carryConversation();
  announce('Opening the sign-in page…');
  try {
    await auth.beginSignIn(`${location.origin}${APP_PATH}`);
  } catch (err) {
    ui.signIn.disabled = false;
    announce('');
    const message = `the sign-in service cannot be reached (${describe(err)}).`;
    if (signedIn) showError(`Sign-in failed: ${message}`);
    else showSignedOut(message);
  }
}

function showChat(): void {
  const user = auth.user;
  if (!user) return showSignedOut();
  signedIn = true;
  ui.signedOut.hidden = true;
  ui.account.hidden = false;
  ui.accountName.textContent = user.name;
  ui.chat.hidden = false;
  lastUser = user;
  history = new BrowserHistory(user.sub);
  ui.keepHistory.checked = history.enabled;
  const carried = takeCarried(user.sub);
  messages = carried?.messages.length ? carried.messages : history.load();
  if (carried?.draft) ui.prompt.value = carried.draft;
  renderConversation();
  clearError();
  setBridge('unknown');
  modelsLoaded = false;
  updateControls();
  void poll();
}

async function signOut(): Promise<void> {
  ui.signOut.disabled = true;
  generating?.controller.abort();
  stopPolling();
  await auth.signOut();
  ui.signOut.disabled = false;
  messages = [];
  renderConversation();
  resetModels('Sign in to see your models.');
  showSignedOut();
  announce('You are signed out. Your sign-in was removed from this tab.');
  ui.signIn.focus();
}

/** A refused or expired sign-in while using the app: say so in place and offer to sign in again. */
function signInProblem(message: string): void {
  stopPolling();
  setBridge('unknown');
  showError(message, 'sign-in');
}

// ---------------------------------------------------------------- the bridge

const BRIDGE_TEXT: Record<BridgeState, string> = {
  unknown: 'Checking whether your computer is connected…',
  starting: 'Starting your cloud endpoint…',
  connected: 'Your computer is connected.',
  'not-connected': 'Your computer is not connected.',
  error: 'Cannot check your computer right now.',
};

function setBridge(state: BridgeState, detail?: string): void {
  const previous = bridgeState;
  bridgeState = state;
  const text = detail ? `${BRIDGE_TEXT[state]} ${detail}` : BRIDGE_TEXT[state];
  // Only real changes reach the live region, so polling does not repeat itself to a screen reader.
  if (ui.bridgeStatus.textContent !== text) ui.bridgeStatus.textContent = text;
  ui.bridge.dataset['state'] = state;
  ui.bridgeHelp.hidden = state !== 'not-connected';
  if (state === 'connected') {
    if (previous !== 'connected') {
      if (ui.chatError.dataset['kind'] === 'not-connected') clearError();
      modelsFailed = false;
    }
    // Also retried on every poll after a lost connection (a phone changing networks).
    if (!modelsLoaded && !modelsLoading && !modelsFailed) void loadModels();
  }
  if (state === 'not-connected' && !modelsLoaded) resetModels('Connect your computer to see its models.');
  updateControls();
}

let shownComputers = '';

/** The user's connected computers (issue 10): name, models, since when, requests in flight, address. */
function showComputers(computers: readonly ComputerStatus[]): void {
  const key = JSON.stringify(computers);
  // Rebuilt only when something changed: polling must not churn the page.
  if (key === shownComputers) return;
  shownComputers = key;
  ui.computers.hidden = computers.length === 0;
  ui.computers.replaceChildren(
    ...computers.map((c) => {
      const since = c.connectedSince ? new Date(c.connectedSince).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : 'just now';
      // The proxy lists models only while several computers are connected; one computer's are in the model picker.
      const models = c.models.length ? [`${c.models.length} model${c.models.length === 1 ? '' : 's'}: ${c.models.join(', ')}`] : [];
      const details = [...models, `connected since ${since}`, `${c.inFlight} request${c.inFlight === 1 ? '' : 's'} in flight`, ...(c.address ? [`from ${c.address}`] : [])];
      const item = element('li', { attrs: { 'data-computer': c.name } });
      item.append(element('strong', { text: c.name }), element('span', { text: ` — ${details.join(' · ')}` }));
      return item;
    }),
  );
}

function stopPolling(): void {
  clearTimeout(pollTimer);
  pollTimer = undefined;
}

function schedulePoll(delay = POLL_MS): void {
  stopPolling();
  if (signedIn && document.visibilityState === 'visible') pollTimer = setTimeout(() => void poll(), delay);
}

async function poll(): Promise<void> {
  if (polling || !signedIn) return;
  polling = true;
  stopPolling();
  let keepPolling = true;
  try {
    let status = await api.proxyStatus();
    if (status.status === 'stopped' && Date.now() - lastStartAttempt > START_RETRY_MS) {
      // Nothing runs for this account yet (or it stopped when idle): start the cloud endpoint.
      lastStartAttempt = Date.now();
      setBridge('starting');
      status = await api.startProxy();
    }
    showComputers(status.computers ?? []);
    if (status.bridgeConnected) setBridge('connected');
    else if (status.status === 'starting') setBridge('starting');
    else setBridge('not-connected');
  } catch (err) {
    if (err instanceof ApiProblem && err.kind === 'sign-in') {
      keepPolling = false;
      signInProblem(err.message);
    } else {
      setBridge('error', err instanceof ApiProblem ? err.message : describe(err));
    }
  } finally {
    polling = false;
    if (keepPolling) schedulePoll();
  }
}

// ---------------------------------------------------------------- models

function resetModels(placeholder: string): void {
  modelsLoaded = false;
  ui.model.replaceChildren(element('option', { text: placeholder, attrs: { value: '' } }));
  ui.modelsNote.hidden = true;
  updateControls();
}

async function loadModels(): Promise<void> {
  modelsLoading = true;
  ui.reloadModels.disabled = true;
  ui.model.setAttribute('aria-busy', 'true');
  try {
    const models = await api.models();
    fillModels(models);
    modelsLoaded = true;
  } catch (err) {
    if (err instanceof ApiProblem && err.kind === 'sign-in') signInProblem(err.message);
    else if (err instanceof ApiProblem && err.kind === 'not-connected') {
      resetModels('Connect your computer to see its models.');
      setBridge('not-connected');
    } else if (err instanceof ApiProblem && err.kind === 'network') {
      resetModels('Loading your models…'); // the next check of the bridge tries again
    } else {
      modelsFailed = true;
      resetModels('Models could not be loaded.');
      showError(`Your models could not be loaded: ${describe(err)}`);
    }
  } finally {
    modelsLoading = false;
    ui.reloadModels.disabled = false;
    ui.model.removeAttribute('aria-busy');
    updateControls();
  }
}

function fillModels(models: ModelInfo[]): void {
  const previous = ui.model.value || sessionStorage.getItem(MODEL_KEY) || '';
  if (models.length === 0) {
    ui.model.replaceChildren(element('option', { text: 'No models on your computer', attrs: { value: '' } }));
    ui.modelsNote.textContent = 'Download one on your computer first, for example: ollama pull llama3.2';
    ui.modelsNote.hidden = false;
    return;
  }
  ui.modelsNote.hidden = true;
  ui.model.replaceChildren(
    ...models.map((m) => element('option', { text: m.parameterSize ? `${m.name} (${m.parameterSize})` : m.name, attrs: { value: m.name } })),
  );
  if (models.some((m) => m.name === previous)) ui.model.value = previous;
}

// ---------------------------------------------------------------- the conversation

function updateControls(): void {
  const busy = generating !== undefined;
  ui.send.disabled = busy || !ui.model.value;
  ui.stop.disabled = !busy;
  ui.model.disabled = busy || !modelsLoaded;
  ui.clear.disabled = busy || messages.length === 0;
  ui.composer.setAttribute('aria-busy', String(busy));
}

function renderMessage(message: ChatMessage, label: string): MessageView {
  const text = document.createTextNode(message.content);
  const note = element('p', { className: 'message-note' });
  note.hidden = true;
  const item = element('li', { className: `message message-${message.role}` }, [
    element('p', { className: 'message-author', text: label }),
    element('div', { className: 'message-text' }, [text]),
    note,
  ]);
  ui.conversation.append(item);
  ui.emptyNote.hidden = true;
  return { item, text, note };
}

function renderConversation(): void {
  ui.conversation.replaceChildren();
  for (const m of messages) renderMessage(m, m.role === 'user' ? 'You' : 'Model');
  ui.emptyNote.hidden = messages.length > 0;
  updateControls();
}

function nearBottom(): boolean {
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
}

function keepInView(follow: boolean): void {
  if (follow) window.scrollTo({ top: document.documentElement.scrollHeight });
}

function setNote(view: MessageView, text: string, kind: 'stopped' | 'error'): void {
  view.note.textContent = text;
  view.note.className = `message-note message-note-${kind}`;
  view.note.hidden = false;
}

type Outcome = { kind: 'done' } | { kind: 'stopped' } | { kind: 'error'; message: string; problem?: ApiProblem };

async function streamAnswer(model: string, request: ChatMessage[], answer: ChatMessage, view: MessageView, signal: AbortSignal): Promise<Outcome> {
  try {
    const res = await api.chat(model, request, signal);
    if (!res.body) return { kind: 'error', message: 'This browser cannot read streamed answers.' };
    let done = false;
    for await (const value of ndjsonLines(res.body)) {
      const chunk = readChatChunk(value);
      if (chunk.error !== undefined) return { kind: 'error', message: `The answer stopped with an error: ${chunk.error}` };
      if (chunk.token) {
        const follow = nearBottom();
        answer.content += chunk.token;
        view.text.appendData(chunk.token);
        keepInView(follow);
      }
      if (chunk.done) done = true;
    }
    return done ? { kind: 'done' } : { kind: 'error', message: 'The answer broke off before it was complete: the connection to your computer was lost. What arrived is shown above.' };
  } catch (err) {
    if (signal.aborted || isAbort(err)) return { kind: 'stopped' };
    if (err instanceof ApiProblem) return { kind: 'error', message: err.message, problem: err };
    if (err instanceof GarbledStream) return { kind: 'error', message: `The answer could not be read: ${err.message}` };
    return { kind: 'error', message: 'The connection broke while the answer was streaming. What arrived is shown above.' };
  }
}

async function send(): Promise<void> {
  const content = ui.prompt.value.trim();
  if (!content || generating) return;
  const model = ui.model.value;
  if (!model) {
    showError('Choose a model first.');
    ui.model.focus();
    return;
  }
  clearError();
  sessionStorage.setItem(MODEL_KEY, model);
  const question: ChatMessage = { role: 'user', content };
  messages.push(question);
  const questionView = renderMessage(question, 'You');
  ui.prompt.value = '';
  const answer: ChatMessage = { role: 'assistant', content: '' };
  const view = renderMessage(answer, model);
  view.item.setAttribute('aria-busy', 'true');
  view.item.classList.add('streaming');
  keepInView(true);
  const controller = new AbortController();
  generating = { controller, view };
  updateControls();
  ui.prompt.focus();

  const outcome = await streamAnswer(model, messages.slice(), answer, view, controller.signal);

  generating = undefined;
  view.item.classList.remove('streaming');
  view.item.setAttribute('aria-busy', 'false');
  if (outcome.kind === 'stopped') {
    setNote(view, answer.content ? 'Stopped.' : 'Stopped before any answer.', 'stopped');
    announce('Stopped.');
  } else if (outcome.kind === 'error') {
    setNote(view, answer.content ? 'Incomplete.' : 'No answer.', 'error');
    const kind = outcome.problem?.kind ?? 'failed';
    if (kind === 'sign-in') {
      signInProblem(outcome.message);
    } else {
      showError(outcome.message, kind);
      if (kind === 'not-connected') {
        setBridge('not-connected');
        void poll();
      }
    }
  }
  if (answer.content) {
    messages.push(answer);
  } else if (outcome.kind === 'error') {
    // Nothing came back: take the question out again and give it back to the message box.
    messages.pop();
    questionView.item.remove();
    view.item.remove();
    if (!ui.prompt.value) ui.prompt.value = content;
    ui.emptyNote.hidden = messages.length > 0;
  }
  history?.save(messages);
  updateControls();
}

function stop(): void {
  if (!generating) return;
  generating.controller.abort();
  ui.prompt.focus();
}

function clearConversation(): void {
  generating?.controller.abort();
  messages = [];
  renderConversation();
  history?.save(messages);
  clearError();
  announce('The conversation was cleared.');
  ui.prompt.focus();
}

// ---------------------------------------------------------------- start

async function loadConfig(): Promise<ClientConfig> {
  for (let attempt = 0; ; attempt++) {
    let res: Response | undefined;
    try {
      res = await fetch(CONFIG_PATH, { cache: 'no-store', credentials: 'omit' });
    } catch {
      // offline, or the server is restarting
    }
    if (res?.ok) return (await res.json()) as ClientConfig;
    if (attempt >= 10 || (res && res.status !== 503)) {
      throw new Error(`The server's sign-in settings cannot be read (${res ? `HTTP ${res.status}` : 'no answer'}). Reload the page to try again.`);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

function wire(): void {
  ui.signIn.addEventListener('click', () => void signIn());
  ui.signOut.addEventListener('click', () => void signOut());
  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    void send();
  });
  ui.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    } else if (event.key === 'Escape' && generating) {
      event.preventDefault();
      stop();
    }
  });
  ui.stop.addEventListener('click', stop);
  ui.model.addEventListener('change', () => {
    sessionStorage.setItem(MODEL_KEY, ui.model.value);
    updateControls();
  });
  ui.reloadModels.addEventListener('click', () => {
    modelsFailed = false;
    void loadModels();
  });
  ui.clear.addEventListener('click', clearConversation);
  ui.keepHistory.addEventListener('change', () => {
    if (!history) return;
    const on = history.setEnabled(ui.keepHistory.checked, messages);
    if (ui.keepHistory.checked && !on) {
      ui.keepHistory.checked = false;
      showError('This browser does not allow this page to store anything, so history cannot be kept.');
      return;
    }
    announce(on ? 'History is now kept in this browser.' : 'History is no longer kept; what was kept in this browser was deleted.');
  });
  // Back from the issuer's page to a page kept in the back/forward cache: the button works again.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) ui.signIn.disabled = false;
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && signedIn && ui.chatError.dataset['kind'] !== 'sign-in') void poll();
    else stopPolling();
  });
}

/** The endpoint's two base URLs, for apps (issue 9); the keys they need are made on the computer. */
function showBaseUrls(): void {
  byId('ollama-base-url', HTMLElement).textContent = `${location.origin}${OLLAMA_PREFIX}`;
  byId('openai-base-url', HTMLElement).textContent = `${location.origin}${OLLAMA_PREFIX}/v1`;
}

async function start(): Promise<void> {
  ui = findUi();
  wire();
  showBaseUrls();
  const config = await loadConfig();
  if (!config.webClientId) {
    throw new Error('This server has no web client configured (AUTH0_WEB_CLIENT_ID), so you cannot sign in from a browser here.');
  }
  auth = new WebAuth({ ...config, webClientId: config.webClientId });
  api = new CloudApi(auth);
  auth.onExpired = (message) => signInProblem(`${message} Sign in again to go on.`);

  const here = new URL(location.href);
  if (WebAuth.isCallback(here)) {
    // The code and state are single-use: take them out of the address bar and the tab's history.
    window.history.replaceState(null, '', APP_PATH);
    announce('Finishing sign-in…');
    try {
      await auth.completeSignIn(here);
      announce(`Signed in as ${auth.user?.name ?? ''}.`);
      showChat();
      ui.prompt.focus();
    } catch (err) {
      announce('');
      showSignedOut(describe(err));
    }
  } else if (auth.signedIn) {
    auth.resume();
    showChat();
  } else {
    showSignedOut();
  }
  ui.main.setAttribute('aria-busy', 'false');
  document.body.dataset['ready'] = 'true';
}

start().catch((err: unknown) => showFatal(describe(err)));
