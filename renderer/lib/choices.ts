/**
 * The words next to each choice in the Settings window. Records keyed by the contract's own
 * unions, so a new management endpoint or log level breaks the build until it is explained here.
 */
import type { ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import type { LogLevel } from '../../main/settings/settings.js';

export const MANAGEMENT_CHOICES: Record<ManagementEndpoint, { label: string; explanation: string }> = {
  pull: { label: 'Pull', explanation: 'Download new models from a registry onto this computer (uses disk space and bandwidth).' },
  push: { label: 'Push', explanation: 'Upload models from this computer to a registry.' },
  create: { label: 'Create', explanation: 'Create new models here from a Modelfile or from uploaded weights.' },
  copy: { label: 'Copy', explanation: 'Copy a model on this computer under a new name.' },
  delete: { label: 'Delete', explanation: 'Delete models from this computer.' },
  blobs: { label: 'Blobs', explanation: 'Upload model files to this computer (used together with Create).' },
};

export const LOG_LEVEL_LABELS: Record<LogLevel, string> = {
  error: 'Errors only',
  warn: 'Warnings and errors',
  info: 'Information (default)',
  debug: 'Debug (verbose)',
};
