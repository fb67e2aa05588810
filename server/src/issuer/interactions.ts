/**
 * The embedded issuer's interactions: the page oidc-provider sends a person to when it needs them.
 * Login asks for a user name only; consent is granted automatically for what the client asked
 * (both clients are first-party), in the same step so a browser needs no extra round trip.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';

import {
  checkUserName,
  contentSecurityPolicy,
  renderLoginPage,
  renderMessagePage,
} from './login-page.js';
import { OIDC_SCOPES } from './provider-configuration.js';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

export const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/;

const MAX_FORM_BYTES = 4096;
const KNOWN_SCOPES = new Set<string>(OIDC_SCOPES);

export interface InteractionContext {
  provider: Provider;
  audience: string;
  /** Origins a form may land on besides the issuer (the web client's), for form-action. */
  formTargets: readonly string[];
}

function sendHtml(res: ServerResponse, status: number, html: string, formTargets: readonly string[]): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Security-Policy', contentSecurityPolicy(formTargets));
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.end(html);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) {
    throw new errors.InvalidRequest('the sign-in form must be sent as application/x-www-form-urlencoded');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new errors.InvalidRequest('the sign-in form is too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The origin the browser ends up at once the interaction is finished: the client's redirect URI. */
function redirectOrigin(interaction: Interaction): string[] {
  const uri = interaction.params['redirect_uri'];
  if (typeof uri !== 'string') return [];
  try {
    return [new URL(uri).origin];
  } catch {
    return [];
  }
}

/** Grants the client everything it asked for in this authorization request. */
async function grantRequested(ctx: InteractionContext, interaction: Interaction, accountId: string): Promise<string> {
  const { Grant } = ctx.provider;
  const clientId = String(interaction.params['client_id']);
  const existing = interaction.grantId ? await Grant.find(interaction.grantId) : undefined;
  const grant = existing && existing.accountId === accountId ? existing : new Grant({ accountId, clientId });

  const scope = typeof interaction.params['scope'] === 'string' ? interaction.params['scope'].split(' ') : [];
  const oidcScope = scope.filter((value) => KNOWN_SCOPES.has(value));
  if (oidcScope.length > 0) grant.addOIDCScope(oidcScope.join(' '));

  // The API defines no scopes; the resource itself is what the access token is for.
  if (grant.resources?.[ctx.audience] === undefined) grant.addResourceScope(ctx.audience, '');
  return grant.save();
}

async function clientName(ctx: InteractionContext, interaction: Interaction): Promise<string> {
  const client = await ctx.provider.Client.find(String(interaction.params['client_id']));
  return client?.clientName ?? String(interaction.params['client_id']);
}

async function showInteraction(
  ctx: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  interaction: Interaction,
): Promise<void> {
  const formTargets = [...ctx.formTargets, ...redirectOrigin(interaction)];
  if (interaction.prompt.name === 'login') {
    sendHtml(
      res,
      200,
      renderLoginPage({ action: `/interaction/${interaction.uid}/login`, clientName: await clientName(ctx, interaction) }),
      formTargets,
    );
    return;
  }
  if (interaction.prompt.name === 'consent' && interaction.session?.accountId) {
    const grantId = await grantRequested(ctx, interaction, interaction.session.accountId);
    await ctx.provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  sendHtml(
    res,
    400,
    renderMessagePage('Sign-in error', `This issuer cannot handle the "${interaction.prompt.name}" step.`),
    formTargets,
  );
}

async function submitLogin(
  ctx: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  interaction: Interaction,
): Promise<void> {
  const form = await readForm(req);
  if (form.get('action') === 'cancel') {
    await ctx.provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'The sign-in was cancelled.' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  const formTargets = [...ctx.formTargets, ...redirectOrigin(interaction)];
  if (interaction.prompt.name !== 'login') {
    sendHtml(res, 400, renderMessagePage('Sign-in error', 'This sign-in step does not take a user name.'), formTargets);
    return;
  }
  const submitted = form.get('username') ?? '';
  const check = checkUserName(submitted);
  if (!check.ok) {
    sendHtml(
      res,
      400,
      renderLoginPage({
        action: `/interaction/${interaction.uid}/login`,
        clientName: await clientName(ctx, interaction),
        userName: submitted.slice(0, 200),
        error: check.message,
      }),
      formTargets,
    );
    return;
  }
  const grantId = await grantRequested(ctx, interaction, check.userName);
  await ctx.provider.interactionFinished(
    req,
    res,
    { login: { accountId: check.userName, amr: ['user-name'] }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

/** Handles GET /interaction/:uid and POST /interaction/:uid/login; answers every request itself. */
export async function handleInteraction(
  ctx: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  uid: string,
  step: 'show' | 'login',
): Promise<void> {
  try {
    if ((step === 'show' && req.method !== 'GET') || (step === 'login' && req.method !== 'POST')) {
      res.setHeader('Allow', step === 'show' ? 'GET' : 'POST');
      sendHtml(res, 405, renderMessagePage('Method not allowed', 'This page does not take that request.'), ctx.formTargets);
      return;
    }
    const interaction = await ctx.provider.interactionDetails(req, res);
    if (interaction.uid !== uid) {
      throw new errors.SessionNotFound('interaction does not match the page');
    }
    if (step === 'show') await showInteraction(ctx, req, res, interaction);
    else await submitLogin(ctx, req, res, interaction);
  } catch (err) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof errors.SessionNotFound) {
      sendHtml(
        res,
        400,
        renderMessagePage(
          'Sign-in expired',
          'This sign-in attempt is no longer valid (it expired, was already used, or cookies are blocked). Start the sign-in again from the app.',
        ),
        ctx.formTargets,
      );
      return;
    }
    if (err instanceof errors.OIDCProviderError) {
      sendHtml(res, err.statusCode, renderMessagePage('Sign-in error', err.error_description ?? err.message), ctx.formTargets);
      return;
    }
    throw err;
  }
}
